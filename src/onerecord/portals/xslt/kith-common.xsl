<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shared templates for showing KITH messages (epikrise, svarrapport, henvisning) as an HTML
  fragment: the parties (patient, sender, author, date), coded values, dates and free text.

  Elements are matched by local name so that every version of a KITH namespace
  (http://www.kith.no/xmlstds/<message>/<date>) is shown the same way. Every optional element
  may be missing. Text from the message is only ever written with xsl:value-of, so the
  serialiser escapes it; nothing from the input is copied through as markup.
  Included by epikrise.xsl, svarrapport.xsl and henvisning.xsl.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:str="http://exslt.org/strings" extension-element-prefixes="str">

  <!-- Nothing is shown unless a template asks for it. -->
  <xsl:template match="text()|comment()|processing-instruction()"/>

  <!-- The document heading: MsgType/@DN, else the given default. -->
  <xsl:template name="kith-title">
    <xsl:param name="default"/>
    <xsl:variable name="dn" select="normalize-space(*[local-name()='MsgType']/@DN)"/>
    <h2>
      <xsl:choose>
        <xsl:when test="$dn != ''"><xsl:value-of select="$dn"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="$default"/></xsl:otherwise>
      </xsl:choose>
    </h2>
  </xsl:template>

  <!-- Patient, sender, author, recipient and dates as a description list. -->
  <xsl:template name="kith-parties">
    <xsl:variable name="patient" select="*[local-name()='Patient'][1]"/>
    <xsl:variable name="inst" select="*[local-name()='ServProvider']/*[local-name()='HCP']/*[local-name()='Inst'][1]"/>
    <xsl:variable name="prof" select="*[local-name()='ServProvider']/*[local-name()='HCP']//*[local-name()='HCProf'][1]"/>
    <xsl:variable name="receiver" select="*[local-name()='Receiver' or local-name()='ServReceiver']//*[local-name()='Inst'][1]"/>
    <xsl:variable name="requester" select="*[local-name()='Requester']//*[local-name()='HCProf'][1]"/>
    <xsl:variable name="generated" select="*[local-name()='GenDate' or local-name()='IssueDate'][1]"/>
    <section class="kith-parties">
      <h3>Pasient og avsender</h3>
      <dl>
        <dt>Pasient</dt>
        <dd>
          <xsl:choose>
            <xsl:when test="normalize-space($patient/*[local-name()='Name']) != ''">
              <xsl:value-of select="normalize-space($patient/*[local-name()='Name'])"/>
            </xsl:when>
            <xsl:when test="$patient/*[local-name()='FamilyName' or local-name()='GivenName']">
              <xsl:value-of select="normalize-space($patient/*[local-name()='FamilyName'])"/>
              <xsl:text>, </xsl:text>
              <xsl:value-of select="normalize-space($patient/*[local-name()='GivenName'])"/>
            </xsl:when>
            <xsl:otherwise>Ikke oppgitt</xsl:otherwise>
          </xsl:choose>
        </dd>
        <xsl:if test="normalize-space($patient/*[local-name()='OffId']) != ''">
          <dt>
            <xsl:call-template name="kith-coded">
              <xsl:with-param name="node" select="$patient/*[local-name()='TypeOffId']"/>
              <xsl:with-param name="default" select="'Fødselsnummer'"/>
            </xsl:call-template>
          </dt>
          <dd><xsl:value-of select="normalize-space($patient/*[local-name()='OffId'])"/></dd>
        </xsl:if>
        <xsl:if test="$inst">
          <dt>Virksomhet</dt>
          <dd><xsl:value-of select="normalize-space($inst/*[local-name()='Name'])"/></dd>
          <xsl:if test="normalize-space($inst/*[local-name()='Dept']/*[local-name()='Name']) != ''">
            <dt>Avdeling</dt>
            <dd><xsl:value-of select="normalize-space($inst/*[local-name()='Dept']/*[local-name()='Name'])"/></dd>
          </xsl:if>
        </xsl:if>
        <xsl:if test="normalize-space($prof/*[local-name()='Name']) != ''">
          <dt>Ansvarlig helsepersonell</dt>
          <dd>
            <xsl:call-template name="kith-person">
              <xsl:with-param name="prof" select="$prof"/>
            </xsl:call-template>
          </dd>
        </xsl:if>
        <xsl:if test="normalize-space($requester/*[local-name()='Name']) != ''">
          <dt>Rekvirent</dt>
          <dd>
            <xsl:call-template name="kith-person">
              <xsl:with-param name="prof" select="$requester"/>
            </xsl:call-template>
          </dd>
        </xsl:if>
        <xsl:if test="normalize-space($receiver/*[local-name()='Name']) != ''">
          <dt>Mottaker</dt>
          <dd><xsl:value-of select="normalize-space($receiver/*[local-name()='Name'])"/></dd>
        </xsl:if>
        <xsl:if test="$generated">
          <dt>Dato</dt>
          <dd>
            <xsl:call-template name="kith-date">
              <xsl:with-param name="value" select="($generated/@V | $generated[not(@V)])[1]"/>
            </xsl:call-template>
          </dd>
        </xsl:if>
        <xsl:for-each select="*[local-name()='Priority'][1]">
          <dt>Prioritet</dt>
          <dd>
            <xsl:call-template name="kith-coded">
              <xsl:with-param name="node" select="."/>
              <xsl:with-param name="default" select="'Ikke oppgitt'"/>
            </xsl:call-template>
          </dd>
        </xsl:for-each>
      </dl>
    </section>
  </xsl:template>

  <!-- "Name (HPR-nr. 123)" for an HCProf; the number only when typed as HPR or untyped. -->
  <xsl:template name="kith-person">
    <xsl:param name="prof"/>
    <xsl:value-of select="normalize-space($prof/*[local-name()='Name'])"/>
    <xsl:variable name="id" select="normalize-space($prof/*[local-name()='Id'])"/>
    <xsl:variable name="type" select="$prof/*[local-name()='TypeId']/@V"/>
    <xsl:if test="$id != '' and (not($type) or $type = 'HPR')">
      <xsl:value-of select="concat(' (HPR-nr. ', $id, ')')"/>
    </xsl:if>
  </xsl:template>

  <!-- A coded value (KITH CV/CS): its display name, else its code, else its text. -->
  <xsl:template name="kith-coded">
    <xsl:param name="node"/>
    <xsl:param name="default" select="''"/>
    <xsl:choose>
      <xsl:when test="normalize-space($node/@DN) != ''"><xsl:value-of select="normalize-space($node/@DN)"/></xsl:when>
      <xsl:when test="normalize-space($node) != ''"><xsl:value-of select="normalize-space($node)"/></xsl:when>
      <xsl:when test="normalize-space($node/@V) != ''"><xsl:value-of select="normalize-space($node/@V)"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="$default"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- An ISO 8601 date or date-time as "dd.mm.åååå kl. tt.mm"; anything else as written. -->
  <xsl:template name="kith-date">
    <xsl:param name="value"/>
    <xsl:variable name="v" select="normalize-space($value)"/>
    <xsl:choose>
      <xsl:when test="string-length($v) &gt;= 10 and substring($v, 5, 1) = '-' and substring($v, 8, 1) = '-'">
        <xsl:value-of select="concat(substring($v, 9, 2), '.', substring($v, 6, 2), '.', substring($v, 1, 4))"/>
        <xsl:if test="substring($v, 11, 1) = 'T' and string-length($v) &gt;= 16">
          <xsl:value-of select="concat(' kl. ', substring($v, 12, 2), '.', substring($v, 15, 2))"/>
        </xsl:if>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$v"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- A number with a decimal comma (bokmål); anything that is not a number as written. -->
  <xsl:template name="kith-number">
    <xsl:param name="value"/>
    <xsl:variable name="v" select="normalize-space($value)"/>
    <xsl:choose>
      <xsl:when test="string(number($v)) != 'NaN'"><xsl:value-of select="translate($v, '.', ',')"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="$v"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Free text: one paragraph per non-empty line (EXSLT str:tokenize, no recursion). -->
  <xsl:template name="kith-text">
    <xsl:param name="text"/>
    <xsl:for-each select="str:tokenize(string($text), '&#10;&#13;')">
      <xsl:if test="normalize-space(.) != ''">
        <p><xsl:value-of select="normalize-space(.)"/></p>
      </xsl:if>
    </xsl:for-each>
  </xsl:template>

  <!-- Diagnoses (Diagnosis/Concept, or a Diagnosis that is itself coded). -->
  <xsl:template name="kith-diagnoses">
    <xsl:variable name="diagnoses" select="*[local-name()='Diagnosis']"/>
    <xsl:if test="$diagnoses">
      <section class="kith-diagnoses">
        <h3>
          <xsl:choose>
            <xsl:when test="count($diagnoses) = 1">Diagnose</xsl:when>
            <xsl:otherwise>Diagnoser</xsl:otherwise>
          </xsl:choose>
        </h3>
        <ul>
          <xsl:for-each select="$diagnoses">
            <xsl:variable name="concept" select="(*[local-name()='Concept'] | self::*[not(*[local-name()='Concept'])])[1]"/>
            <li>
              <xsl:call-template name="kith-coded">
                <xsl:with-param name="node" select="$concept"/>
                <xsl:with-param name="default" select="'Ikke oppgitt'"/>
              </xsl:call-template>
              <xsl:if test="normalize-space($concept/@V) != '' and normalize-space($concept/@DN) != ''">
                <xsl:value-of select="concat(' (', normalize-space($concept/@V), ')')"/>
              </xsl:if>
            </li>
          </xsl:for-each>
        </ul>
      </section>
    </xsl:if>
  </xsl:template>

  <!-- Clinical information: a heading (Heading or a coded type) and its text. -->
  <xsl:template name="kith-clinical-information">
    <xsl:for-each select="*[local-name()='ClinInfo']">
      <section class="kith-clinical-information">
        <h3>
          <xsl:choose>
            <xsl:when test="normalize-space(*[local-name()='Heading']) != ''">
              <xsl:value-of select="normalize-space(*[local-name()='Heading'])"/>
            </xsl:when>
            <xsl:when test="*[local-name()='TypeClinInfo' or local-name()='Type']">
              <xsl:call-template name="kith-coded">
                <xsl:with-param name="node" select="*[local-name()='TypeClinInfo' or local-name()='Type'][1]"/>
                <xsl:with-param name="default" select="'Kliniske opplysninger'"/>
              </xsl:call-template>
            </xsl:when>
            <xsl:otherwise>Kliniske opplysninger</xsl:otherwise>
          </xsl:choose>
        </h3>
        <xsl:for-each select="*[local-name()='TextResultInfo' or local-name()='TextInfo' or local-name()='Text']">
          <xsl:call-template name="kith-text">
            <xsl:with-param name="text" select="string(.)"/>
          </xsl:call-template>
        </xsl:for-each>
      </section>
    </xsl:for-each>
  </xsl:template>

  <!-- Free-text comments on the message. -->
  <xsl:template name="kith-comments">
    <xsl:param name="nodes"/>
    <xsl:if test="$nodes[normalize-space() != '']">
      <section class="kith-comments">
        <h3>Kommentar</h3>
        <xsl:for-each select="$nodes">
          <xsl:call-template name="kith-text">
            <xsl:with-param name="text" select="string(.)"/>
          </xsl:call-template>
        </xsl:for-each>
      </section>
    </xsl:if>
  </xsl:template>

</xsl:stylesheet>
