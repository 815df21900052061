// Signature pad (mouse, touch, pen through pointer events; undo and clear) and the reading-time
// beacon. The page works without this: the typed name is the signature.
(function () {
  "use strict";
  var canvas = document.getElementById("signature-pad");
  var form = document.getElementById("approve-form");
  if (canvas && form) {
    document.getElementById("pad-wrap").hidden = false;
    var ctx = canvas.getContext("2d");
    var undo = document.getElementById("pad-undo");
    var clear = document.getElementById("pad-clear");
    var drawing = false, strokes = [], current = null;
    ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#111827";

    function point(e) {
      var r = canvas.getBoundingClientRect();
      // A pen reports pressure; mouse and touch report 0.5 while pressed (or 0).
      var pressure = e.pointerType === "pen" && e.pressure > 0 ? e.pressure : 0.5;
      return [(e.clientX - r.left) * canvas.width / r.width,
              (e.clientY - r.top) * canvas.height / r.height, pressure];
    }
    function redraw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      strokes.forEach(function (s) {
        if (s.length === 1) {  // a tap is a dot
          ctx.beginPath(); ctx.arc(s[0][0], s[0][1], 1.5 + s[0][2] * 2, 0, 2 * Math.PI);
          ctx.fillStyle = ctx.strokeStyle; ctx.fill(); return;
        }
        for (var i = 1; i < s.length; i++) {
          ctx.beginPath(); ctx.lineWidth = 1.5 + s[i][2] * 2.5;
          ctx.moveTo(s[i - 1][0], s[i - 1][1]); ctx.lineTo(s[i][0], s[i][1]); ctx.stroke();
        }
      });
      undo.disabled = clear.disabled = strokes.length === 0;
      canvas.setAttribute("data-strokes", String(strokes.length));
    }
    canvas.addEventListener("pointerdown", function (e) {
      if (e.button > 0) return;
      e.preventDefault();
      drawing = true; current = [point(e)]; strokes.push(current);
      canvas.setPointerCapture(e.pointerId); redraw();
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!drawing) return;
      var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      (events.length ? events : [e]).forEach(function (c) { current.push(point(c)); });
      redraw();
    });
    ["pointerup", "pointercancel", "lostpointercapture"].forEach(function (t) {
      canvas.addEventListener(t, function () { if (drawing) { drawing = false; redraw(); } });
    });
    undo.addEventListener("click", function () { strokes.pop(); redraw(); });
    clear.addEventListener("click", function () { strokes = []; redraw(); });
    form.addEventListener("submit", function () {
      document.getElementById("signature_data").value =
        strokes.length ? canvas.toDataURL("image/png") : "";
    });
    redraw();
  }

  var beacon = document.getElementById("beacon");
  var url = beacon && beacon.getAttribute("data-url");
  if (url && navigator.sendBeacon) {
    var last = Date.now();
    var send = function (leaving) {
      var seconds = Math.round((Date.now() - last) / 1000);
      if (seconds <= 0 || (document.hidden && !leaving)) return;
      last = Date.now();
      var body = JSON.stringify({ seconds: Math.min(seconds, 60) });
      navigator.sendBeacon(url, new Blob([body], { type: "application/json" }));
    };
    setInterval(function () { send(false); }, 15000);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) send(true); else last = Date.now();
    });
    window.addEventListener("pagehide", function () { send(true); });
  }
})();
