<?xml version="1.0" encoding="UTF-8"?>
<!--
  KITH henvisning (referral) as an HTML fragment: heading, parties (with priority and
  recipient), the reason for referral, diagnoses, clinical information and comments.
  References: KITH Henvisning v1.1 (http://www.kith.no/xmlstds/henvisning/2012-02-15); any
  namespace version is accepted because elements are matched by local name.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="kith-common.xsl"/>
  <xsl:output method="html" encoding="UTF-8" indent="no"/>

  <xsl:template match="/">
    <xsl:apply-templates select="*[local-name()='Henvisning'][1]"/>
  </xsl:template>

  <xsl:template match="*[local-name()='Henvisning']">
    <article class="kith-document kith-henvisning">
      <xsl:call-template name="kith-title">
        <xsl:with-param name="default" select="'Henvisning'"/>
      </xsl:call-template>
      <xsl:call-template name="kith-parties"/>
      <xsl:variable name="reason" select="*[local-name()='Reason' or local-name()='ReasonAsText']"/>
      <section class="kith-reason">
        <h3>Henvisningsårsak</h3>
        <xsl:choose>
          <xsl:when test="$reason[normalize-space() != '']">
            <xsl:for-each select="$reason">
              <xsl:call-template name="kith-text">
                <xsl:with-param name="text" select="string(.)"/>
              </xsl:call-template>
            </xsl:for-each>
          </xsl:when>
          <xsl:otherwise><p>Ikke oppgitt.</p></xsl:otherwise>
        </xsl:choose>
      </section>
      <xsl:call-template name="kith-diagnoses"/>
      <xsl:call-template name="kith-clinical-information"/>
      <xsl:call-template name="kith-comments">
        <xsl:with-param name="nodes" select="*[local-name()='Comment']"/>
      </xsl:call-template>
    </article>
  </xsl:template>
</xsl:stylesheet>
