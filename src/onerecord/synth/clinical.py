"""Plausible Norwegian clinical text for synthetic documents (invented, about nobody).

Scenarios hold the story of one episode of care; the document builders pick from them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANALYSES",
    "IMAGING",
    "SCENARIOS",
    "Analysis",
    "ImagingStudy",
    "Scenario",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One episode: diagnosis, department specialty (Volven 8451) and text for each document."""

    key: str
    diagnosis: str
    icd10: str
    specialty: str
    children: bool
    admission: str
    course: str
    discharge: str
    referral: str
    note: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """A laboratory analysis with its NLK-style code, unit and reference interval."""

    code: str
    name: str
    unit: str
    low: float
    high: float
    decimals: int


@dataclass(frozen=True, slots=True)
class ImagingStudy:
    """A radiology examination with a normal and an abnormal finding."""

    name: str
    normal: str
    abnormal: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="pneumoni",
        diagnosis="Samfunnservervet pneumoni",
        icd10="J18.9",
        specialty="14",
        children=True,
        admission=(
            "Innlagt via legevakt med tre dagers feber, hoste med ekspektorat og tung pust. "
            "Ved innkomst temperatur 39,1 °C, respirasjonsfrekvens 24, SpO2 91 % på romluft. "
            "Knatrelyder basalt på høyre side."
        ),
        course=(
            "Røntgen thorax viste infiltrat i høyre underlapp. CRP 187 ved innkomst. Behandlet "
            "med benzylpenicillin intravenøst i tre døgn, deretter overgang til fenoksymetyl"
            "penicillin peroralt. Rask klinisk bedring, feberfri fra dag to."
        ),
        discharge=(
            "Utskrives i god allmenntilstand. Fortsetter penicillin til totalt sju dagers "
            "behandling. Kontroll hos fastlege om seks uker med ny røntgen thorax ved "
            "vedvarende symptomer."
        ),
        referral=(
            "Henvises for vurdering av langvarig hoste og feber etter luftveisinfeksjon. "
            "Ingen bedring på penicillin gitt i allmennpraksis. Ber om innleggelse ved behov."
        ),
        note=(
            "Telefonkontakt med pasienten. Bedre, hoster fortsatt litt. Ingen feber. "
            "Avtalt ny kontroll ved behov."
        ),
    ),
    Scenario(
        key="hoftebrudd",
        diagnosis="Lårhalsbrudd, venstre side",
        icd10="S72.0",
        specialty="25",
        children=False,
        admission=(
            "Falt i hjemmet, fikk smerter i venstre hofte og klarte ikke å reise seg. "
            "Forkortet og utadrotert venstre ben. Røntgen bekreftet dislokert collum femoris-"
            "fraktur."
        ),
        course=(
            "Operert samme døgn med hemiprotese. Ukomplisert postoperativt forløp. Mobilisert "
            "med gåstol første postoperative dag. Tromboseprofylakse med dalteparin."
        ),
        discharge=(
            "Utskrives til korttidsplass i kommunen for videre opptrening. Full belastning "
            "tillatt. Fjerning av agraffer etter 14 dager. Vurder osteoporoseutredning."
        ),
        referral=(
            "Henvises for vurdering av osteoporose etter lavenergibrudd. Tidligere frisk, "
            "bruker ingen faste medisiner."
        ),
        note=(
            "Hjemmebesøk. Går med rullator innendørs, noe ustø. Sår tørt og rent. "
            "Hjemmesykepleien kommer to ganger daglig."
        ),
    ),
    Scenario(
        key="appendisitt",
        diagnosis="Akutt appendisitt",
        icd10="K35.8",
        specialty="9",
        children=True,
        admission=(
            "Ett døgns magesmerter, startet rundt navlen og vandret til høyre fossa iliaca. "
            "Kvalm, ett brekninger. Slippøm ved McBurneys punkt. Leukocytter 14,2."
        ),
        course=(
            "Ultralyd viste fortykket appendiks med omkringliggende væske. Laparoskopisk "
            "appendektomi samme kveld. Histologi bekreftet akutt flegmonøs appendisitt."
        ),
        discharge=(
            "Utskrives andre postoperative dag. Paracetamol ved behov. Unngå tunge løft i to "
            "uker. Ta kontakt ved feber eller økende smerter."
        ),
        referral=(
            "Henvises øyeblikkelig hjelp med smerter i høyre fossa iliaca, feber 38,4 °C og "
            "slippøm. Mistenker appendisitt."
        ),
        note="Kontroll etter operasjon. Sårene er fine. Ingen plager. Avslutter oppfølging.",
    ),
    Scenario(
        key="hjertesvikt",
        diagnosis="Forverring av kronisk hjertesvikt",
        icd10="I50.0",
        specialty="14",
        children=False,
        admission=(
            "Økende tung pust og hevelse i bena gjennom to uker, vektøkning 4 kg. Kjent "
            "hjertesvikt med redusert ejeksjonsfraksjon. Krepitasjoner bilateralt basalt."
        ),
        course=(
            "Diuretisk behandling med furosemid intravenøst med god effekt, vektreduksjon 3,5 kg. "
            "NT-proBNP falt fra 4800 til 1900 ng/L. Ekkokardiografi uendret EF 30 %."
        ),
        discharge=(
            "Utskrives med økt dose furosemid 40 mg x 2. Daglig veiing, kontakt lege ved "
            "vektøkning over 2 kg på tre dager. Kontroll i hjertesviktpoliklinikken om fire uker."
        ),
        referral=(
            "Henvises til hjertesviktpoliklinikk for optimalisering av behandling. Fortsatt "
            "NYHA klasse III tross behandling."
        ),
        note="Vekt stabil. Lite ødemer. Fortsetter uendret medikasjon. Ny kontroll om tre måneder.",
    ),
    Scenario(
        key="astma",
        diagnosis="Akutt astmaanfall",
        icd10="J45.9",
        specialty="28",
        children=True,
        admission=(
            "Kjent astma, nå forkjølet i tre dager og økende pustebesvær siste natt. "
            "Innkomst med inndragninger og forlenget ekspirium, SpO2 93 %."
        ),
        course=(
            "Behandlet med inhalasjon av salbutamol og ipratropium samt peroral prednisolon i "
            "tre dager. God effekt. Foreldre veiledet i bruk av inhalasjonskammer."
        ),
        discharge=(
            "Utskrives til hjemmet. Økt vedlikeholdsbehandling med inhalasjonssteroid. "
            "Astmaplan gjennomgått med foreldrene. Kontroll på barnepoliklinikken om tre måneder."
        ),
        referral=(
            "Henvises for astmautredning. Gjentatte episoder med pipelyder og nattlig hoste "
            "siste halvår."
        ),
        note="Ingen anfall siden forrige kontroll. Bruker medisinene som avtalt.",
    ),
    Scenario(
        key="depresjon",
        diagnosis="Moderat depressiv episode",
        icd10="F32.1",
        specialty="31",
        children=False,
        admission=(
            "Henvist fra fastlege med nedstemthet, søvnvansker og redusert funksjon gjennom "
            "fire måneder. Ingen aktuelle selvmordstanker."
        ),
        course=(
            "Utredet poliklinisk med strukturert intervju. Startet kognitiv atferdsterapi, "
            "ti samtaler. Sertralin 50 mg fra uke tre. Gradvis bedring av stemningsleie og søvn."
        ),
        discharge=(
            "Avsluttes i spesialisthelsetjenesten. Videre oppfølging hos fastlege. Fortsetter "
            "sertralin i minst seks måneder etter symptomfrihet."
        ),
        referral=(
            "Henvises til DPS for vurdering og behandling av depresjon som ikke har bedret seg "
            "på tiltak i allmennpraksis."
        ),
        note="Samtale. Sover bedre, er tilbake i delvis arbeid. Fortsetter samtaler hver 14. dag.",
    ),
    Scenario(
        key="diabetes",
        diagnosis="Diabetes mellitus type 2, dårlig regulert",
        icd10="E11.9",
        specialty="14",
        children=False,
        admission=(
            "Poliklinisk vurdering av diabetes type 2 med HbA1c 71 mmol/mol tross metformin. "
            "Overvekt, KMI 31. Ingen kjente senkomplikasjoner."
        ),
        course=(
            "Gjennomgått kosthold og aktivitet. Lagt til SGLT2-hemmer. Øyebunnsfoto uten "
            "retinopati. Monofilament normalt på begge føtter."
        ),
        discharge=(
            "Fortsetter metformin og empagliflozin. Ny HbA1c om tre måneder hos fastlege. "
            "Årskontroll etter NOKLUS-skjema."
        ),
        referral=(
            "Henvises til diabetespoliklinikk med dårlig regulert type 2-diabetes tross "
            "maksimal dose metformin."
        ),
        note="Årskontroll diabetes. HbA1c 54. Blodtrykk 132/84. Fortsetter som før.",
    ),
)

ANALYSES: tuple[Analysis, ...] = (
    Analysis("NPU02319", "Hemoglobin", "g/dL", 11.7, 15.3, 1),
    Analysis("NPU19748", "CRP", "mg/L", 0.0, 5.0, 0),
    Analysis("NPU18016", "Kreatinin", "µmol/L", 45.0, 90.0, 0),
    Analysis("NPU03429", "Natrium", "mmol/L", 137.0, 145.0, 0),
    Analysis("NPU03230", "Kalium", "mmol/L", 3.5, 4.4, 1),
    Analysis("NPU02593", "Leukocytter", "10^9/L", 3.5, 10.0, 1),
    Analysis("NPU03568", "Trombocytter", "10^9/L", 145.0, 390.0, 0),
    Analysis("NPU27300", "HbA1c", "mmol/mol", 20.0, 42.0, 0),
    Analysis("NPU19651", "ALAT", "U/L", 10.0, 45.0, 0),
)

IMAGING: tuple[ImagingStudy, ...] = (
    ImagingStudy(
        "Røntgen thorax",
        "Normal hjertestørrelse. Frie sinus. Ingen infiltrater eller stuvning.",
        "Fortetning i høyre underlapp forenlig med pneumoni. Ingen pleuravæske.",
    ),
    ImagingStudy(
        "CT abdomen med kontrast",
        "Normale forhold i parenkymatøse organer. Ingen fri væske eller fri luft.",
        "Fortykket appendiks, 11 mm, med periappendikulær fettvevsreaksjon.",
    ),
    ImagingStudy(
        "MR kne, høyre",
        "Intakte menisker og korsbånd. Ingen væske i leddet.",
        "Horisontal ruptur i bakre horn av mediale menisk. Lett leddvæske.",
    ),
    ImagingStudy(
        "Ultralyd abdomen",
        "Normal lever, galleblære uten konkrementer, normale nyrer.",
        "Galleblære med flere konkrementer, ingen veggfortykkelse.",
    ),
    ImagingStudy(
        "Røntgen venstre hofte",
        "Ingen fraktur. Normale leddforhold.",
        "Dislokert lateral collum femoris-fraktur.",
    ),
)
