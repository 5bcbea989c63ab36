// Sudo mode: once the user has confirmed it is them, the action they were
// doing goes on by itself — this page's form sends the original request
// again. Without this script, the page's Continue button does the same.
(function () {
  "use strict";
  var form = document.getElementById("sudo-continue");
  if (!form) return;
  var button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true; // one submission, not two
  form.submit();
})();
