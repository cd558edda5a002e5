/* One generation's page: while the job runs, poll its live status (queue position, time so far) and reload
   once it ends, so the outputs are rendered by the server like everywhere else. */
(function () {
  "use strict";

  var box = document.querySelector("[data-gen-live]");
  if (!box || box.getAttribute("data-terminal") === "true") return;

  var jobId = box.getAttribute("data-job-id");
  var text = document.querySelector("[data-gen-progress-text]");
  var badge = document.querySelector("[data-gen-status]");
  var cancel = document.querySelector("[data-gen-cancel]");
  var started = Date.now();
  var LABELS = { queued: "Queued", processing: "Processing", completed: "Completed", failed: "Failed", canceled: "Canceled" };

  function describe(job) {
    if (job.status === "queued") {
      return "Queued" + (job.queue_position ? " — number " + job.queue_position + " in the queue" : "") +
        ", waiting for a worker…";
    }
    var upstream = job.upstream_queue_position ? " The provider has it at position " + job.upstream_queue_position + " in its queue." : "";
    return "Generating… " + job.elapsed_seconds + " s so far." + upstream;
  }

  function poll() {
    fetch("/generation.php?format=json&id=" + encodeURIComponent(jobId), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (job) {
      if (job.terminal) { window.location.reload(); return; }
      if (badge) { badge.className = "badge badge-" + job.status; badge.textContent = LABELS[job.status] || job.status; }
      if (text) text.textContent = describe(job);
      if (cancel) cancel.hidden = !job.cancelable;
      schedule();
    }, schedule);
  }

  function schedule() {
    var elapsed = Date.now() - started;
    setTimeout(poll, elapsed < 10000 ? 1000 : elapsed < 60000 ? 2000 : 4000);
  }

  schedule();
})();
