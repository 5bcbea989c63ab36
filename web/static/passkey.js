// Passkeys: the browser's half of the WebAuthn ceremonies. Each element
// with data-passkey (templates/partials/passkeys.html) is one ceremony:
// "signin" (no username), "second" (after the password), "register" (the
// security page's add form) and "sudo" (the confirm-it-is-you prompt). A
// click asks the server for options and a sealed state (data-options),
// hands the options to the authenticator, and posts its answer with the
// state back (data-finish). The server keeps nothing between the two calls.
(function () {
  "use strict";
  // Several partials may be on one page, each with its script tag.
  if (window.hallpassPasskeys) return;
  window.hallpassPasskeys = true;

  // base64url <-> ArrayBuffer, as the server's JSON carries binary values.
  function fromB64url(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64url(buf) {
    if (!buf) return undefined;
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // creationOptions and requestOptions turn the server's JSON into what
  // navigator.credentials wants.
  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    pk.excludeCredentials = (pk.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
    return { publicKey: pk };
  }
  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    if (pk.allowCredentials) {
      pk.allowCredentials = pk.allowCredentials.map(function (c) {
        return Object.assign({}, c, { id: fromB64url(c.id) });
      });
    }
    return { publicKey: pk };
  }

  // credentialJSON is the authenticator's answer as the server reads it.
  function credentialJSON(cred) {
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  // Failure carries a message for the person, and what the server said.
  function Failure(message, body, status) {
    this.message = message;
    this.body = body || {};
    this.status = status || 0;
  }

  // post sends body as JSON and returns the JSON answer; a non-2xx answer,
  // or one that is not JSON (a session that ended sends the browser to the
  // sign-in page), is a Failure.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (res) {
      var json = (res.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      if (res.redirected || !json) {
        throw new Failure("Your session has ended. Reload the page and sign in again.", null, res.status);
      }
      return res.json().then(function (data) {
        if (!res.ok) throw new Failure(data.error || "Something went wrong. Try again.", data, res.status);
        return data;
      });
    }, function () {
      throw new Failure("Hallpass could not be reached. Check your connection and try again.");
    });
  }

  // authenticatorFailure says in words why navigator.credentials failed.
  function authenticatorFailure(err, creating) {
    if (err instanceof Failure) return err;
    switch (err && err.name) {
      case "NotAllowedError":
        return new Failure("The passkey prompt was closed or timed out. Try again when you are ready.");
      case "InvalidStateError":
        return new Failure(creating ? "This device already holds a passkey for your account." : "This passkey cannot be used here.");
      case "SecurityError":
        return new Failure("Passkeys do not work at this address. Ask your administrator to check Hallpass's passkey settings.");
      case "NotSupportedError":
        return new Failure("This device has no authenticator that can make a passkey.");
      default:
        return new Failure("The passkey could not be used. Try again.");
    }
  }

  // showMessage shows msg in line, or hides line when msg is empty. The
  // .alert class comes and goes with it: its display would override the
  // hidden attribute and show an empty alert.
  function showMessage(line, msg) {
    if (!line) return;
    line.textContent = msg;
    line.hidden = !msg;
    line.classList.toggle("alert", !!msg);
  }

  function nextField() {
    var next = document.querySelector("input[name=next]");
    return next ? next.value : "";
  }

  function start(box, kind) {
    var errorLine = box.querySelector("[data-passkey-error]");
    var buttons = box.querySelectorAll("[data-passkey-start]");
    function busy(on) {
      buttons.forEach(function (b) { b.disabled = on; });
      box.setAttribute("aria-busy", on ? "true" : "false");
    }
    function show(msg) {
      showMessage(errorLine, msg);
    }

    var creating = kind === "register";
    var request = {};
    if (kind === "signin") {
      var remember = document.getElementById("remember");
      request.remember = !!(remember && remember.checked);
    } else if (kind === "second") {
      request.mode = "second";
    } else if (creating) {
      var name = box.querySelector("input[name=name]");
      request.name = name ? name.value : "";
    }

    show("");
    busy(true);
    var state;
    post(box.dataset.options, request).then(function (data) {
      state = data.state;
      var call = creating
        ? navigator.credentials.create(creationOptions(data.options))
        : navigator.credentials.get(requestOptions(data.options));
      return call.catch(function (err) { throw authenticatorFailure(err, creating); });
    }).then(function (cred) {
      if (!cred) throw new Failure("The passkey could not be used. Try again.");
      return post(box.dataset.finish, {
        mode: request.mode || "", state: state, credential: credentialJSON(cred), next: nextField()
      });
    }).then(function (done) {
      if (kind === "sudo") {
        // Go on with the action the prompt stopped.
        var form = document.getElementById("passkey-sudo-continue");
        if (box.dataset.returnMethod === "POST" && form) {
          form.submit();
        } else {
          window.location.assign(box.dataset.returnTo || "/");
        }
        return;
      }
      var codes = done.recoveryCodes || [];
      var panel = document.getElementById("passkey-codes");
      if (creating && codes.length && panel) {
        var list = document.getElementById("passkey-code-list");
        codes.forEach(function (c) {
          var li = document.createElement("li"), code = document.createElement("code");
          code.textContent = c;
          li.appendChild(code);
          list.appendChild(li);
        });
        box.hidden = true;
        panel.hidden = false;
        panel.scrollIntoView({ block: "start" });
        return;
      }
      window.location.assign(done.redirect || "/");
    }).catch(function (err) {
      busy(false);
      if (!(err instanceof Failure)) err = authenticatorFailure(err, creating);
      if (creating && err.status === 403 && err.body.sudo && box.tagName === "FORM") {
        // Adding a passkey needs a fresh proof of sign-in: send the form
        // itself, which the server answers with the confirm-it-is-you
        // prompt, and which comes back here once confirmed.
        HTMLFormElement.prototype.submit.call(box);
        return;
      }
      show(err.message);
    });
  }

  function init() {
    document.querySelectorAll("[data-passkey]").forEach(function (box) {
      var kind = box.dataset.passkey;
      if (!window.PublicKeyCredential || !navigator.credentials) {
        box.querySelectorAll("[data-passkey-start]").forEach(function (b) { b.disabled = true; });
        showMessage(box.querySelector("[data-passkey-error]"), "This browser does not support passkeys.");
        return;
      }
      if (box.tagName === "FORM") {
        box.addEventListener("submit", function (e) {
          e.preventDefault();
          start(box, kind);
        });
      } else {
        box.querySelectorAll("[data-passkey-start]").forEach(function (b) {
          b.addEventListener("click", function () { start(box, kind); });
        });
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
