// Live session events for a signed-in page (GET /events, Server-Sent
// Events): signed out anywhere → the sign-in page with the reason; a new
// sign-in of the account → "Was this you?"; the session about to end →
// a warning with "Stay signed in". Every page works without this script.
(function () {
  "use strict";
  var body = document.body;
  if (!window.EventSource || !body || !body.hasAttribute("data-live")) return;

  var notices = document.createElement("div");
  notices.className = "live-notices";
  notices.setAttribute("role", "status");
  notices.setAttribute("aria-live", "polite");
  var main = document.getElementById("content");
  (main || body).insertBefore(notices, (main || body).firstChild);

  var offset = 0; // server now minus our now, from the last "session" event
  var deadlines = null;
  var timer = null;
  var warning = null;
  var source = null;

  function now() { return Date.now() + offset; }

  // goToSignIn shows the sign-in page saying why the session ended, as
  // after a click. Without the reason (no word from the stream), it loads
  // this page again: the server sends a browser whose session ended to the
  // sign-in page with the reason, and one still signed in gets the page.
  function goToSignIn(reason) {
    if (source) source.close();
    var here = location.pathname + location.search;
    if (!reason) { window.location.assign(here); return; }
    window.location.assign("/login?next=" + encodeURIComponent(here) + "&reason=" + encodeURIComponent(reason));
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function postForm(action, fields) {
    var f = el("form");
    f.method = "post";
    f.action = action;
    Object.keys(fields || {}).forEach(function (k) {
      var i = el("input");
      i.type = "hidden"; i.name = k; i.value = fields[k];
      f.appendChild(i);
    });
    return f;
  }

  function clock(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function hideWarning() {
    if (warning) { warning.remove(); warning = null; }
  }

  function showWarning(kind) {
    if (warning && warning.dataset.kind === kind) return;
    hideWarning();
    warning = el("div", "live-warning");
    warning.dataset.kind = kind;
    warning.setAttribute("role", "alert");
    var text = el("p", "live-warning-text");
    warning.appendChild(text);
    if (kind === "idle") {
      var form = postForm("/account/keepalive", { next: location.pathname + location.search });
      var button = el("button", "button button-primary button-small", "Stay signed in");
      button.type = "submit";
      form.appendChild(button);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var data = new URLSearchParams({ js: "1" });
        fetch("/account/keepalive", { method: "POST", body: data, credentials: "same-origin" })
          .then(function (res) {
            if (res.status === 204) {
              // The old deadlines are stale: the stream sends the new
              // ones (at once with Redis, within a second without), and
              // until then the warning must not come back.
              deadlines = null;
              hideWarning();
              return;
            }
            goToSignIn();
          })
          .catch(function () { form.submit(); });
      });
      warning.appendChild(form);
    }
    notices.appendChild(warning);
    if (kind === "idle") warning.querySelector("button").focus();
  }

  function tick() {
    if (!deadlines) return;
    var t = now();
    var idleLeft = deadlines.idle - t;
    var absLeft = deadlines.absolute - t;
    if (absLeft <= deadlines.warn && absLeft <= idleLeft) {
      showWarning("absolute");
      warning.firstChild.textContent = "Your session ends in " + clock(absLeft) +
        ". It cannot be extended: you will need to sign in again.";
    } else if (idleLeft <= deadlines.warn) {
      showWarning("idle");
      warning.firstChild.textContent = "You will be signed out in " + clock(idleLeft) + " for inactivity.";
    } else {
      hideWarning();
    }
    if (Math.min(idleLeft, absLeft) < -5000) {
      // Past the end and no word from the server: ask the page itself.
      goToSignIn();
    }
  }

  function newSignIn(d) {
    var box = el("div", "live-signin");
    var when = Math.abs(now() - d.at) < 60000 ? "just now" : new Date(d.at).toLocaleTimeString();
    box.appendChild(el("p", "live-signin-text",
      "New sign-in: " + (d.device || "an unknown device") + ", " + (d.ip || "unknown address") + ", " + when + " — Was this you?"));
    var form = postForm("/account/sessions/" + encodeURIComponent(d.id) + "/revoke");
    var out = el("button", "button button-danger-quiet button-small", "Sign it out");
    out.type = "submit";
    form.appendChild(out);
    box.appendChild(form);
    var dismiss = el("button", "button button-quiet button-small", "It was me");
    dismiss.type = "button";
    dismiss.addEventListener("click", function () { box.remove(); });
    box.appendChild(dismiss);
    notices.appendChild(box);
  }

  function connect() {
    source = new EventSource("/events");
    source.addEventListener("session", function (e) {
      var d = JSON.parse(e.data);
      offset = d.now - Date.now();
      deadlines = d;
      tick();
    });
    source.addEventListener("signed-out", function (e) { goToSignIn(e.data); });
    source.addEventListener("new-sign-in", function (e) { newSignIn(JSON.parse(e.data)); });
    source.onerror = function () {
      if (source.readyState !== EventSource.CLOSED) return; // reconnecting by itself
      // Refused outright (401 once the session is gone, or 503): find out
      // whether we are still signed in before trying again. Only the
      // status is wanted, so a stream that opens is closed at once (the
      // route has no HEAD: that would be 405 whatever the session).
      var probe = new AbortController();
      fetch("/events", { credentials: "same-origin", signal: probe.signal }).then(function (res) {
        probe.abort();
        if (res.status === 401) { goToSignIn(); return; }
        setTimeout(connect, 5000);
      }, function () { setTimeout(connect, 5000); });
    };
  }

  connect();
  timer = setInterval(tick, 1000);
})();
