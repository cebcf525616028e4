<?xml version="1.0" encoding="UTF-8"?>
<!--
  KITH svarrapport (laboratory report) as an HTML fragment: heading, parties, then one table
  per ServReport with analysis, value, unit, reference range and a written flag for results
  outside the range (DevResultInd, or computed from the range when the message has none).
  Each cell carries data-label="<column header>" so that on a phone the table becomes one card
  per analysis with the header before each value (portal.css, table.lab-results; issue 11,
  defect 6: the out-of-range remark must not fall off the screen).
  References: KITH Svarrapport (http://www.kith.no/xmlstds/svar/2012-02-15, root Svarrapport;
  the labsvar namespaces, root Message with the patient inside ServReport); any namespace
  version is accepted because elements are matched by local name. Values are read from
  Result, NumResult/NumResultValue or TextResult; decimal commas count as points when compared
  with the range.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="kith-common.xsl"/>
  <xsl:output method="html" encoding="UTF-8" indent="no"/>

  <xsl:template match="/">
    <xsl:apply-templates select="*[local-name()='Svarrapport' or local-name()='Message'][1]"/>
  </xsl:template>

  <xsl:template match="*[local-name()='Svarrapport' or local-name()='Message']">
    <article class="kith-document kith-svarrapport">
      <xsl:call-template name="kith-title">
        <xsl:with-param name="default" select="'Svarrapport'"/>
      </xsl:call-template>
      <!-- The parties sit on the root (svar) or in the first ServReport (labsvar). -->
      <xsl:choose>
        <xsl:when test="not(*[local-name()='Patient']) and *[local-name()='ServReport'][*[local-name()='Patient']]">
          <xsl:for-each select="*[local-name()='ServReport'][*[local-name()='Patient']][1]">
            <xsl:call-template name="kith-parties"/>
          </xsl:for-each>
        </xsl:when>
        <xsl:otherwise>
          <xsl:call-template name="kith-parties"/>
        </xsl:otherwise>
      </xsl:choose>
      <xsl:call-template name="kith-diagnoses"/>
      <xsl:call-template name="kith-clinical-information"/>
      <xsl:for-each select="*[local-name()='ServReport']">
        <xsl:call-template name="service-report"/>
      </xsl:for-each>
      <xsl:if test="not(*[local-name()='ServReport']//*[local-name()='ResultItem'])">
        <p>Svarrapporten har ingen analyseresultater.</p>
      </xsl:if>
      <xsl:call-template name="kith-comments">
        <xsl:with-param name="nodes" select="*[local-name()='Comment']"/>
      </xsl:call-template>
    </article>
  </xsl:template>

  <xsl:template name="service-report">
    <xsl:variable name="area" select="*[local-name()='ServType']"/>
    <xsl:variable name="status" select="*[local-name()='Status']"/>
    <section class="kith-results">
      <h3>Analyseresultater</h3>
      <xsl:if test="$status">
        <p>
          <xsl:text>Status: </xsl:text>
          <xsl:call-template name="kith-coded">
            <xsl:with-param name="node" select="$status"/>
          </xsl:call-template>
        </p>
      </xsl:if>
      <xsl:if test=".//*[local-name()='ResultItem']">
        <table class="lab-results">
          <caption>
            <xsl:text>Analyseresultater</xsl:text>
            <xsl:if test="normalize-space($area/@DN) != ''">
              <xsl:value-of select="concat(' – ', normalize-space($area/@DN))"/>
            </xsl:if>
          </caption>
          <thead>
            <tr>
              <th scope="col">Analyse</th>
              <th scope="col">Resultat</th>
              <th scope="col">Enhet</th>
              <th scope="col">Referanseområde</th>
              <th scope="col">Merknad</th>
            </tr>
          </thead>
          <tbody>
            <xsl:for-each select=".//*[local-name()='ResultItem']">
              <xsl:call-template name="result-item"/>
            </xsl:for-each>
          </tbody>
        </table>
      </xsl:if>
      <xsl:call-template name="kith-comments">
        <xsl:with-param name="nodes" select="*[local-name()='Comment']"/>
      </xsl:call-template>
    </section>
  </xsl:template>

  <xsl:template name="result-item">
    <xsl:variable name="analysis" select="(*[local-name()='Analysis'] | *[local-name()='ClinInv' or local-name()='Investigation']/*[local-name()='Id'])[1]"/>
    <xsl:variable name="result" select="(*[local-name()='Result'] | *[local-name()='NumResult']/*[local-name()='NumResultValue'] | *[local-name()='TextResult'])[1]"/>
    <xsl:variable name="interval" select="*[local-name()='RefInterval'][1]"/>
    <xsl:variable name="low" select="$interval/*[local-name()='Low'][1]"/>
    <xsl:variable name="high" select="$interval/*[local-name()='High'][1]"/>
    <xsl:variable name="deviation" select="*[local-name()='DevResultInd'][1]"/>
    <xsl:variable name="value">
      <xsl:choose>
        <xsl:when test="normalize-space($result/@V) != ''"><xsl:value-of select="normalize-space($result/@V)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="normalize-space($result)"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:variable name="number" select="number(translate($value, ',', '.'))"/>
    <xsl:variable name="low-number" select="number(translate(normalize-space($low/@V), ',', '.'))"/>
    <xsl:variable name="high-number" select="number(translate(normalize-space($high/@V), ',', '.'))"/>
    <!-- H or L: from DevResultInd when present, else from the range. -->
    <xsl:variable name="flag">
      <xsl:choose>
        <xsl:when test="$deviation">
          <xsl:value-of select="normalize-space($deviation/@V)"/>
          <xsl:if test="normalize-space($deviation/@V) = ''">A</xsl:if>
        </xsl:when>
        <xsl:when test="$number &lt; $low-number">L</xsl:when>
        <xsl:when test="$number &gt; $high-number">H</xsl:when>
      </xsl:choose>
    </xsl:variable>
    <tr>
      <xsl:if test="$flag != ''">
        <xsl:attribute name="class">outside-range</xsl:attribute>
      </xsl:if>
      <th scope="row">
        <xsl:call-template name="kith-coded">
          <xsl:with-param name="node" select="$analysis"/>
          <xsl:with-param name="default" select="'Ukjent analyse'"/>
        </xsl:call-template>
      </th>
      <td data-label="Resultat">
        <xsl:choose>
          <xsl:when test="$flag != ''">
            <strong>
              <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$value"/></xsl:call-template>
            </strong>
          </xsl:when>
          <xsl:otherwise>
            <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$value"/></xsl:call-template>
          </xsl:otherwise>
        </xsl:choose>
      </td>
      <td data-label="Enhet">
        <xsl:value-of select="normalize-space(($result/@U | $low/@U | $high/@U)[1])"/>
      </td>
      <td data-label="Referanseområde">
        <xsl:choose>
          <xsl:when test="$low/@V and $high/@V">
            <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$low/@V"/></xsl:call-template>
            <xsl:text>–</xsl:text>
            <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$high/@V"/></xsl:call-template>
          </xsl:when>
          <xsl:when test="$low/@V">
            <xsl:text>≥ </xsl:text>
            <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$low/@V"/></xsl:call-template>
          </xsl:when>
          <xsl:when test="$high/@V">
            <xsl:text>≤ </xsl:text>
            <xsl:call-template name="kith-number"><xsl:with-param name="value" select="$high/@V"/></xsl:call-template>
          </xsl:when>
          <xsl:otherwise>
            <xsl:value-of select="normalize-space($interval)"/>
          </xsl:otherwise>
        </xsl:choose>
      </td>
      <td data-label="Merknad">
        <xsl:choose>
          <xsl:when test="$flag = 'H'">Høy – utenfor referanseområdet</xsl:when>
          <xsl:when test="$flag = 'L'">Lav – utenfor referanseområdet</xsl:when>
          <xsl:when test="$flag != ''">
            <xsl:call-template name="kith-coded">
              <xsl:with-param name="node" select="$deviation"/>
            </xsl:call-template>
            <xsl:text> – avvikende resultat</xsl:text>
          </xsl:when>
        </xsl:choose>
        <xsl:for-each select="*[local-name()='Comment'][normalize-space() != '']">
          <xsl:if test="$flag != '' or position() &gt; 1"><xsl:text> </xsl:text></xsl:if>
          <xsl:value-of select="normalize-space(.)"/>
        </xsl:for-each>
      </td>
    </tr>
  </xsl:template>
</xsl:stylesheet>
