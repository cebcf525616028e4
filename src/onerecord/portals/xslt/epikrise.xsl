<?xml version="1.0" encoding="UTF-8"?>
<!--
  KITH epikrise (discharge summary) as an HTML fragment: heading, parties, diagnoses and the
  clinical information sections (ClinInfo: Heading + TextResultInfo), then any comments.
  References: KITH Epikrise v1.2 (http://www.kith.no/xmlstds/epikrise/2012-02-15); any
  namespace version is accepted because elements are matched by local name.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:include href="kith-common.xsl"/>
  <xsl:output method="html" encoding="UTF-8" indent="no"/>

  <xsl:template match="/">
    <xsl:apply-templates select="*[local-name()='Epikrise'][1]"/>
  </xsl:template>

  <xsl:template match="*[local-name()='Epikrise']">
    <article class="kith-document kith-epikrise">
      <xsl:call-template name="kith-title">
        <xsl:with-param name="default" select="'Epikrise'"/>
      </xsl:call-template>
      <xsl:call-template name="kith-parties"/>
      <xsl:call-template name="kith-diagnoses"/>
      <xsl:call-template name="kith-clinical-information"/>
      <xsl:call-template name="kith-comments">
        <xsl:with-param name="nodes" select="*[local-name()='Comment']"/>
      </xsl:call-template>
      <xsl:if test="not(*[local-name()='Diagnosis' or local-name()='ClinInfo'])">
        <p>Epikrisen har ingen diagnoser eller kliniske opplysninger.</p>
      </xsl:if>
    </article>
  </xsl:template>
</xsl:stylesheet>
