// Kiln's customer dashboard: reveal and hide config var values. The values
// are already in the page (sent with Cache-Control: no-store); revealing one
// is a local toggle, never a request.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-reveal]");
  if (!button) {
    return;
  }
  var value = document.getElementById(button.getAttribute("data-reveal"));
  var mask = document.getElementById(button.getAttribute("data-mask"));
  if (!value || !mask) {
    return;
  }
  var show = value.hidden;
  value.hidden = !show;
  mask.hidden = show;
  button.textContent = show ? "Hide" : "Reveal";
  button.setAttribute("aria-expanded", show ? "true" : "false");
});
