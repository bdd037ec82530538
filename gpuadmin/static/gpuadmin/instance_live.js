// The live instance page: while a job is in flight, ask the live view every two seconds and update the
// status, the job's progress, the reason and the buttons in place; stop once no job is in flight.
"use strict";
(function () {
  const panel = document.getElementById("instance-live");
  if (!panel) return;
  const EVERY_MS = 2000;
  const $ = (id) => document.getElementById(id);

  function show(live) {
    const status = $("instance-status");
    status.textContent = live.status_label;
    status.dataset.status = live.status;
    $("instance-reason").textContent = live.status_reason;
    $("instance-reason-row").hidden = !live.status_reason;
    const addresses = live.ipv4.concat(live.ipv6 ? [live.ipv6] : []);
    $("instance-address").textContent = addresses.length ? addresses.join(", ") : "none yet";
    $("instance-host").textContent = live.host || "-";
    const job = live.job;
    $("instance-job").dataset.status = job ? job.status : "";
    $("instance-job-text").textContent = job
      ? job.action_label + " #" + job.id + ": " + job.status + (job.step ? ", " + job.step : "")
      : "none";
    const progress = $("instance-job-progress");
    if (progress && job) {
      progress.value = job.percent;
      $("instance-job-percent").textContent = job.percent + "%";
    }
    $("instance-job-error").textContent = job ? job.error : "";
    $("instance-job-error").hidden = !(job && job.error);
    for (const button of panel.querySelectorAll(".live-action")) {
      button.hidden = !live.actions.includes(button.dataset.action);
    }
    panel.dataset.inFlight = live.in_flight ? "true" : "false";
  }

  function poll() {
    fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((live) => {
        show(live);
        if (live.in_flight) setTimeout(poll, EVERY_MS);
      })
      .catch(() => setTimeout(poll, EVERY_MS * 3));
  }

  if (panel.dataset.inFlight === "true") setTimeout(poll, EVERY_MS);
})();
