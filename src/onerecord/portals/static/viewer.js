/* The imaging viewer (templates/_imaging_body.html, imaging_pages.py): scroll through a series
   with the wheel, the arrow keys or the slider, zoom, and change the window preset, all without
   reloading. Without this file the page still works: links, a GET form, the <video> element.
   No inline script and no CDN: served from the portal's own origin under its CSP. The pixels are
   the portal's proxy URLs the page names (data-series-url); this file builds no other URL. */
(function () {
  "use strict";
  var viewer = document.querySelector("[data-viewer]");
  if (!viewer) { return; }
  var pane = viewer.querySelector(".image-pane");
  var image = viewer.querySelector(".viewer-image");
  if (!pane || !image) { return; } /* a video: the <video> element's own controls seek */

  var uids = (viewer.getAttribute("data-instances") || "").split(" ").filter(Boolean);
  /* One multi-frame image (ultrasound cine, enhanced CT/MR): scroll through its frames. */
  var frames = Number(viewer.getAttribute("data-frames")) || 0;
  var count = frames || uids.length;
  var seriesUrl = viewer.getAttribute("data-series-url");
  var pageUrl = viewer.getAttribute("data-page-url");
  var index = Number(viewer.getAttribute("data-index")) || 0;
  var windowValue = viewer.getAttribute("data-window") || "";
  var preset = viewer.getAttribute("data-preset") || "";
  var texts = {
    position: viewer.getAttribute("data-text-position") || "",
    zoom: viewer.getAttribute("data-text-zoom") || "",
    alt: viewer.getAttribute("data-text-alt") || ""
  };
  var position = viewer.querySelector(".position");
  var slider = viewer.querySelector("input[type=range]");
  var zoomBox = viewer.querySelector(".zoom");
  var zoomLevel = viewer.querySelector(".zoom-level");
  var steps = viewer.querySelector(".steps");
  var zoom = 1;
  var ZOOMS = [1, 1.5, 2, 3, 4, 6, 8];

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
    });
  }

  function rendered(at) {
    var url = frames
      ? seriesUrl + "/instances/" + uids[0] + "/frames/" + (at + 1) + "/rendered"
      : seriesUrl + "/instances/" + uids[at] + "/rendered";
    return windowValue ? url + "?window=" + encodeURIComponent(windowValue + ",linear") : url;
  }

  function pageHref(at) {
    var url = new URL(pageUrl, window.location.href);
    url.searchParams.set("bilde", String(at + 1));
    if (preset) { url.searchParams.set("vindu", preset); } else { url.searchParams.delete("vindu"); }
    return url.pathname + url.search;
  }

  function preload(at) {
    if (at >= 0 && at < count) { new Image().src = rendered(at); }
  }

  function show(at) {
    at = Math.max(0, Math.min(count - 1, at));
    var changed = at !== index;
    index = at;
    image.src = rendered(index);
    image.alt = fill(texts.alt, { index: index + 1, count: count });
    if (position && changed) {
      position.textContent = fill(texts.position, { index: index + 1, count: count });
    }
    if (slider) { slider.value = String(index + 1); }
    viewer.setAttribute("data-index", String(index));
    window.history.replaceState(null, "", pageHref(index));
    if (steps) {
      var prev = steps.querySelector("a[rel=prev]");
      var next = steps.querySelector("a[rel=next]");
      if (prev) {
        prev.href = pageHref(Math.max(index - 1, 0));
        prev.parentNode.hidden = index === 0;
      }
      if (next) {
        next.href = pageHref(Math.min(index + 1, count - 1));
        next.parentNode.hidden = index >= count - 1;
      }
    }
    preload(index + 1);
    preload(index - 1);
  }

  var fitted = 0; /* the image's height when fitted, measured before the first zoom */
  function setZoom(level) {
    zoom = Math.max(ZOOMS[0], Math.min(ZOOMS[ZOOMS.length - 1], level));
    if (zoom === 1) {
      image.style.height = "";
      pane.classList.remove("zoomed");
    } else {
      if (!pane.classList.contains("zoomed")) { fitted = image.clientHeight; }
      image.style.height = Math.round(fitted * zoom) + "px";
      pane.classList.add("zoomed");
    }
    if (zoomLevel) { zoomLevel.textContent = fill(texts.zoom, { percent: Math.round(zoom * 100) }); }
  }

  function stepZoom(direction) {
    var i = ZOOMS.indexOf(zoom);
    if (i < 0) { i = 0; }
    setZoom(ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, i + direction))]);
  }

  /* Zoom exists only with this file: its buttons are hidden in the page as sent. */
  if (zoomBox) {
    zoomBox.hidden = false;
    zoomBox.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-zoom]");
      if (!button) { return; }
      var what = button.getAttribute("data-zoom");
      if (what === "in") { stepZoom(1); } else if (what === "out") { stepZoom(-1); } else { setZoom(1); }
    });
  }

  pane.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var key = event.key;
    if (key === "ArrowDown" || key === "ArrowRight" || key === "PageDown") { show(index + 1); }
    else if (key === "ArrowUp" || key === "ArrowLeft" || key === "PageUp") { show(index - 1); }
    else if (key === "Home") { show(0); }
    else if (key === "End") { show(count - 1); }
    else if (key === "+" || key === "=") { stepZoom(1); }
    else if (key === "-") { stepZoom(-1); }
    else if (key === "0") { setZoom(1); }
    else { return; }
    event.preventDefault();
  });

  /* The wheel scrolls through the series (as in a PACS viewer); a zoomed image pans by drag. */
  var wheelRest = 0;
  pane.addEventListener("wheel", function (event) {
    if (count < 2 || event.ctrlKey) { return; }
    event.preventDefault();
    wheelRest += event.deltaY;
    if (Math.abs(wheelRest) >= 40 || event.deltaMode !== 0) {
      show(index + (wheelRest > 0 ? 1 : -1));
      wheelRest = 0;
    }
  }, { passive: false });

  if (slider) {
    var form = slider.form;
    var submit = form ? form.querySelector("button[type=submit]") : null;
    if (submit) { submit.hidden = true; }
    slider.addEventListener("input", function () { show(Number(slider.value) - 1); });
    if (form) { form.addEventListener("submit", function (event) { event.preventDefault(); }); }
  }

  if (steps) {
    steps.addEventListener("click", function (event) {
      var link = event.target.closest("a[rel]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
      event.preventDefault();
      show(index + (link.getAttribute("rel") === "next" ? 1 : -1));
    });
  }

  var presets = viewer.querySelector(".presets");
  if (presets) {
    presets.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-window]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
      event.preventDefault();
      windowValue = link.getAttribute("data-window") || "";
      preset = link.getAttribute("data-preset") || "";
      viewer.setAttribute("data-window", windowValue);
      viewer.setAttribute("data-preset", preset);
      Array.prototype.forEach.call(presets.querySelectorAll("a[data-window]"), function (a) {
        if (a === link) { a.setAttribute("aria-current", "true"); } else { a.removeAttribute("aria-current"); }
      });
      var hidden = slider && slider.form ? slider.form.querySelector("input[name=vindu]") : null;
      if (hidden) { hidden.value = preset; }
      show(index);
    });
  }

  /* Drag to pan a zoomed image (the pane scrolls); touch screens pan natively. */
  var drag = null;
  pane.addEventListener("pointerdown", function (event) {
    if (zoom === 1 || event.pointerType !== "mouse") { return; }
    drag = { x: event.clientX, y: event.clientY, left: pane.scrollLeft, top: pane.scrollTop };
    event.preventDefault();
  });
  window.addEventListener("pointermove", function (event) {
    if (!drag) { return; }
    pane.scrollLeft = drag.left - (event.clientX - drag.x);
    pane.scrollTop = drag.top - (event.clientY - drag.y);
  });
  window.addEventListener("pointerup", function () { drag = null; });

  preload(index + 1);
})();
