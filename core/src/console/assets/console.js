// linkwright console: the little the pages do in the browser. Loaded from
// this origin only (the Content-Security-Policy allows no inline script);
// every page works without it, except the live progress bar and the copy
// buttons.
"use strict";

// Copy buttons: data-copy holds the text (a short URL, a new key).
function setUpCopyButtons() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text, done); });
      } else {
        fallbackCopy(text, done);
      }
    });
  });
}

function fallbackCopy(text, done) {
  var area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try {
    document.execCommand("copy");
    done();
  } finally {
    document.body.removeChild(area);
  }
}

// A bulk job's page: poll its progress until it ends, then show the result.
function followJob() {
  var job = document.getElementById("job");
  if (!job) { return; }
  var url = job.getAttribute("data-progress");
  var finished = ["done", "failed"];
  if (finished.indexOf(job.getAttribute("data-status")) >= 0) { return; }
  var bar = document.getElementById("job-progress");
  var set = function (id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  };
  var poll = function () {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        bar.max = Math.max(1, s.total);
        bar.value = s.processed;
        set("job-status", s.status);
        set("job-processed", s.processed);
        set("job-ok", s.ok);
        set("job-errors", s.errors);
        job.setAttribute("data-status", s.status);
        if (finished.indexOf(s.status) >= 0) {
          document.getElementById("job-result").hidden = false;
        } else {
          setTimeout(poll, 400);
        }
      })
      .catch(function () { setTimeout(poll, 2000); });
  };
  poll();
}

document.addEventListener("DOMContentLoaded", function () {
  setUpCopyButtons();
  followJob();
  // Set last: the browser tests check that the script ran without error.
  document.documentElement.setAttribute("data-console", "ready");
});
