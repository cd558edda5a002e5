/* The model playground: a form generated from the model's JSON Schema (server-side), sent to the same JSON API
   agents use (/api/v1/generate.php, session cookie + CSRF header), then polled until the job finishes. */
(function () {
  "use strict";

  var form = document.querySelector("[data-playground]");
  if (!form) return;

  var MODEL = form.getAttribute("data-model");
  var AUTHENTICATED = form.getAttribute("data-authenticated") === "true";
  var LOGIN_URL = form.getAttribute("data-login-url");
  var UPLOAD_MODEL = form.getAttribute("data-upload-model");
  var UPLOAD_MAX = parseInt(form.getAttribute("data-upload-max") || "0", 10);
  var REMIX_ID = form.getAttribute("data-remix");
  var RESUME_JOB = form.getAttribute("data-resume-job");
  var PUBLISHABLE = form.getAttribute("data-publishable") === "true";
  var CSRF = (form.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
  var PRICE = JSON.parse(document.getElementById("price-rule").textContent);
  var TERMINAL = ["completed", "failed", "canceled"];

  var result = document.querySelector("[data-result]");
  var q = function (selector, scope) { return (scope || document).querySelector(selector); };
  var costEl = q("[data-cost]");
  var submitButton = q("[data-submit]", form);
  var formError = q("[data-form-error]", form);
  var live = q("[data-live]", result);
  var statusBadge = q("[data-job-status]", result);
  var empty = q("[data-result-empty]", result);
  var progress = q("[data-progress]", result);
  var progressText = q("[data-progress-text]", result);
  var jobError = q("[data-job-error]", result);
  var outputs = q("[data-outputs]", result);
  var jobMeta = q("[data-job-meta]", result);
  var publishForm = q("[data-publish]", result);
  var currentJobId = null;

  /* --- Money: micro-credits as integers, formatted like the server (0.05, 1, 0.3165) ------------------- */
  function formatCredits(micro) {
    var value = BigInt(micro);
    var negative = value < 0n;
    if (negative) value = -value;
    var whole = value / 1000000n;
    var fraction = (value % 1000000n).toString().padStart(6, "0").replace(/0+$/, "");
    return (negative ? "-" : "") + whole.toString() + (fraction ? "." + fraction : "");
  }

  /* The same arithmetic as AIModel.cost_micro on the server: per run, or per unit of one input field. */
  function costMicro(input) {
    var price = BigInt(PRICE.price_micro);
    var minimum = BigInt(PRICE.min_micro);
    if (!PRICE.unit_field) return price > minimum ? price : minimum;
    var value = Object.prototype.hasOwnProperty.call(input, PRICE.unit_field)
      ? input[PRICE.unit_field] : PRICE.defaults[PRICE.unit_field];
    var units;
    if (PRICE.unit_is_length) {
      units = typeof value === "string" ? Array.from(value).length : Array.isArray(value) ? value.length : 0;
    } else {
      units = typeof value === "number" && isFinite(value) ? value : 1;
    }
    var unitsMicro = BigInt(Math.round(units * PRICE.micro));
    var numerator = unitsMicro * price;
    var denominator = BigInt(PRICE.micro) * BigInt(PRICE.unit_size);
    var cost = numerator / denominator + (numerator % denominator > 0n ? 1n : 0n);
    return cost > minimum ? cost : minimum;
  }

  /* --- Reading and writing the generated form ------------------------------------------------------------ */
  function fields() { return Array.prototype.slice.call(form.querySelectorAll("[data-field]")); }

  function readField(el) {
    var control = el.getAttribute("data-control");
    var type = el.getAttribute("data-type");
    var raw = el.value;
    if (control === "checkbox") return { present: true, value: el.checked };
    if (control === "select") return raw === "" ? { present: false } : { present: true, value: JSON.parse(raw) };
    if (control === "number") {
      if (raw.trim() === "") return { present: false };
      var number = type === "integer" ? Number(raw) : parseFloat(raw);
      if (!isFinite(number) || (type === "integer" && !Number.isInteger(number))) {
        return { error: type === "integer" ? "Enter a whole number." : "Enter a number." };
      }
      return { present: true, value: number };
    }
    if (control === "urls") {
      var lines = raw.split(/\r?\n/).map(function (line) { return line.trim(); }).filter(Boolean);
      return lines.length ? { present: true, value: lines } : { present: false };
    }
    if (control === "json") {
      if (raw.trim() === "") return { present: false };
      try { return { present: true, value: JSON.parse(raw) }; } catch (e) { return { error: "This is not valid JSON." }; }
    }
    return raw === "" ? { present: false } : { present: true, value: raw };
  }

  function collect() {
    var input = {};
    var errors = {};
    fields().forEach(function (el) {
      var read = readField(el);
      if (read.error) errors[el.name] = read.error;
      else if (read.present) input[el.name] = read.value;
    });
    return { input: input, errors: errors };
  }

  function fill(input) {
    Object.keys(input || {}).forEach(function (name) {
      var el = fields().filter(function (f) { return f.name === name; })[0];
      if (!el) return;
      var value = input[name];
      var control = el.getAttribute("data-control");
      if (control === "checkbox") el.checked = Boolean(value);
      else if (control === "select") el.value = JSON.stringify(value);
      else if (control === "urls") el.value = Array.isArray(value) ? value.join("\n") : String(value);
      else if (control === "json") el.value = JSON.stringify(value, null, 2);
      else el.value = value === null || value === undefined ? "" : String(value);
    });
    updateCost();
  }

  function updateCost() {
    if (!costEl) return;
    // A value outside the field's range is refused by the API, so it has no price: say so instead of one.
    var outOfRange = fields().filter(function (el) {
      return el.validity && (el.validity.rangeOverflow || el.validity.rangeUnderflow || el.validity.badInput);
    });
    if (outOfRange.length) {
      var label = document.querySelector('label[for="' + outOfRange[0].id + '"]');
      costEl.textContent = "—";
      costEl.title = (label ? label.textContent.replace("*", "").trim() : "A field") + " is out of range.";
      costEl.setAttribute("data-out-of-range", "");
      return;
    }
    costEl.removeAttribute("data-out-of-range");
    costEl.title = "";
    costEl.textContent = formatCredits(costMicro(collect().input));
  }

  function showFieldError(name, message) {
    var el = document.getElementById("f-" + name);
    var box = document.getElementById("f-" + name + "-error");
    if (!el || !box) return false;
    el.setAttribute("aria-invalid", "true");
    box.textContent = message;
    box.hidden = false;
    return true;
  }

  function clearErrors() {
    fields().forEach(function (el) { el.removeAttribute("aria-invalid"); });
    form.querySelectorAll(".error-text").forEach(function (box) { box.hidden = true; box.textContent = ""; });
    formError.hidden = true;
    formError.textContent = "";
  }

  function showFormError(message, link) {
    formError.textContent = message + " ";
    if (link) {
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      formError.appendChild(a);
    }
    formError.hidden = false;
  }

  /* --- The API ------------------------------------------------------------------------------------------ */
  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "pg-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function api(method, url, body, headers) {
    var options = { method: method, credentials: "same-origin", headers: Object.assign({ Accept: "application/json" }, headers || {}) };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = CSRF;
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, ok: response.ok, data: data };
      });
    });
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function pollJob(jobId, onStatus) {
    var started = Date.now();
    var attempt = function () {
      return api("GET", "/api/v1/jobs.php?job_id=" + encodeURIComponent(jobId)).then(function (reply) {
        if (reply.ok && reply.data.status) {
          if (onStatus) onStatus(reply.data);
          if (TERMINAL.indexOf(reply.data.status) !== -1) return reply.data;
        } else if (reply.status === 401 || reply.status === 403 || reply.status === 404) {
          throw new Error(reply.data.message || "The job can no longer be read.");
        }
        return null;
      }, function () { return null; /* a network blip: try again */ }).then(function (job) {
        if (job) return job;
        var elapsed = Date.now() - started;
        return sleep(elapsed < 10000 ? 1000 : elapsed < 60000 ? 2000 : 4000).then(attempt);
      });
    };
    return attempt();
  }

  function updateBalance(credits) {
    if (credits === undefined || credits === null) return;
    document.querySelectorAll("[data-balance-value]").forEach(function (el) { el.textContent = String(credits); });
  }

  function handleRefusal(reply) {
    var data = reply.data || {};
    if (reply.status === 401 || (reply.status === 403 && /CSRF/i.test(data.message || ""))) {
      showFormError("Your session has ended.", { href: LOGIN_URL, text: "Log in again" });
      return;
    }
    if (reply.status === 402) {
      var billing = (data.topup && data.topup.billing_url) || "/billing.php";
      showFormError(data.message || "Not enough credits.", { href: billing, text: "Buy credits" });
      return;
    }
    if (reply.status === 422 && Array.isArray(data.details)) {
      var unplaced = data.details.filter(function (detail) {
        return !showFieldError(String(detail.field || "").split(".")[0], detail.message);
      });
      showFormError(unplaced.length ? unplaced.map(function (d) { return d.field + ": " + d.message; }).join(" ")
        : "Please fix the highlighted fields.");
      var first = form.querySelector("[aria-invalid=true]");
      if (first) first.focus();
      return;
    }
    if (reply.status === 429) {
      showFormError("Too many requests; wait a moment and try again.");
      return;
    }
    showFormError(data.message || "The request failed (HTTP " + reply.status + ").");
  }

  /* --- Showing a job ------------------------------------------------------------------------------------ */
  var STATUS_TEXT = { queued: "Queued — waiting for a worker…", processing: "Generating…", completed: "Done",
    failed: "Failed", canceled: "Canceled" };

  function setStatus(status) {
    statusBadge.hidden = false;
    statusBadge.className = "badge badge-" + status;
    statusBadge.textContent = status;
    progressText.textContent = STATUS_TEXT[status] || status;
    live.textContent = STATUS_TEXT[status] || status;
  }

  function humanSize(bytes) {
    if (!bytes) return "";
    var units = ["B", "KB", "MB", "GB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  function renderOutput(output, index, total) {
    var box = document.createElement("figure");
    box.className = "output";
    box.style.margin = "0";
    var media;
    if (output.type === "image" && output.url) {
      media = document.createElement("img");
      media.src = output.url;
      media.alt = "Output " + (index + 1) + " of " + total + " from " + MODEL;
      if (output.width && output.height) { media.width = output.width; media.height = output.height; }
    } else if (output.type === "video" && output.url) {
      media = document.createElement("video");
      media.src = output.url;
      media.controls = true;
      media.playsInline = true;
      media.preload = "metadata";
    } else if (output.type === "audio" && output.url) {
      media = document.createElement("audio");
      media.src = output.url;
      media.controls = true;
      media.preload = "metadata";
    } else {
      media = document.createElement("pre");
      media.textContent = output.type === "json" ? JSON.stringify(output.data, null, 2) : (output.text || "");
      media.tabIndex = 0;
    }
    box.appendChild(media);
    var bar = document.createElement("figcaption");
    bar.className = "bar";
    var info = document.createElement("span");
    info.className = "muted";
    info.textContent = [output.file_name, output.width && output.height ? output.width + "×" + output.height : "",
      humanSize(output.file_size)].filter(Boolean).join(" · ");
    bar.appendChild(info);
    var actions = document.createElement("span");
    actions.className = "row";
    if (output.text !== undefined) {
      var copy = document.createElement("button");
      copy.type = "button";
      copy.className = "btn btn-sm";
      copy.textContent = "Copy";
      copy.setAttribute("data-copy", output.text || "");
      actions.appendChild(copy);
    }
    if (output.url) {
      var download = document.createElement("a");
      download.className = "btn btn-sm";
      download.href = output.url;
      download.setAttribute("download", output.file_name || "");
      download.textContent = "Download";
      actions.appendChild(download);
    }
    bar.appendChild(actions);
    box.appendChild(bar);
    return box;
  }

  function showJob(job) {
    progress.hidden = true;
    setStatus(job.status);
    if (job.status === "completed") {
      outputs.textContent = "";
      (job.outputs || []).forEach(function (output, index) {
        outputs.appendChild(renderOutput(output, index, job.outputs.length));
      });
      jobMeta.hidden = false;
      jobMeta.textContent = "";
      jobMeta.appendChild(document.createTextNode(job.job_id + " · " + job.cost_credits + " credits · "));
      var page = document.createElement("a");
      page.href = "/generation.php?id=" + encodeURIComponent(job.job_id);
      page.textContent = "Open its page";
      jobMeta.appendChild(page);
      jobMeta.appendChild(document.createTextNode(" · "));
      var history = document.createElement("a");
      history.href = "/generations.php";
      history.textContent = "All your generations";
      jobMeta.appendChild(history);
      // Tool runs (uploads, conversions) are not generations: the showroom refuses them, so none is offered.
      publishForm.hidden = !PUBLISHABLE;
      q("[data-publish-status]", publishForm).textContent = "";
      live.textContent = "Done: " + (job.outputs || []).length + " output(s) below.";
    } else {
      var error = job.error || {};
      jobError.hidden = false;
      jobError.textContent = job.status === "canceled" ? "The job was canceled; its credits were returned."
        : (error.message || "The job failed.") + " Its credits were returned.";
    }
  }

  /* The URL carries the last job (?job=…), so a reload shows its result again instead of an empty form. */
  function rememberJob(jobId) {
    if (!window.history || !window.history.replaceState) return;
    var url = new URL(window.location.href);
    url.searchParams.set("job", jobId);
    url.searchParams.delete("rerun");
    url.searchParams.delete("remix");
    window.history.replaceState(null, "", url.toString());
  }

  function startJob(jobId) {
    currentJobId = jobId;
    rememberJob(jobId);
    empty.hidden = true;
    outputs.textContent = "";
    jobError.hidden = true;
    jobMeta.hidden = true;
    publishForm.hidden = true;
    progress.hidden = false;
    setStatus("queued");
    return pollJob(jobId, function (job) { setStatus(job.status); }).then(showJob, function (error) {
      progress.hidden = true;
      jobError.hidden = false;
      jobError.textContent = error.message;
    });
  }

  /* --- Generate ----------------------------------------------------------------------------------------- */
  function setBusy(busy) {
    if (!submitButton) return;
    submitButton.disabled = busy;
    submitButton.setAttribute("aria-busy", String(busy));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!AUTHENTICATED) { window.location.href = LOGIN_URL; return; }
    clearErrors();
    if (!form.reportValidity()) return;
    var collected = collect();
    var names = Object.keys(collected.errors);
    if (names.length) {
      names.forEach(function (name) { showFieldError(name, collected.errors[name]); });
      document.getElementById("f-" + names[0]).focus();
      return;
    }
    setBusy(true);
    api("POST", "/api/v1/generate.php", { model: MODEL, input: collected.input }, { "Idempotency-Key": idempotencyKey() })
      .then(function (reply) {
        if (reply.status !== 202) { handleRefusal(reply); return null; }
        updateBalance(reply.data.credits);
        return startJob(reply.data.job_id);
      }, function () { showFormError("The server could not be reached; check your connection and try again."); })
      .then(function () { setBusy(false); });
  });

  form.addEventListener("input", updateCost);
  form.addEventListener("change", updateCost);

  document.querySelectorAll("[data-seed-random]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-seed-random"));
      var max = parseInt(button.getAttribute("data-seed-max"), 10) || 2147483647;
      target.value = Math.floor(Math.random() * (max + 1));
      target.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });

  /* --- Uploads: a file becomes a URL through the upload model (a free job with a data: URL) ------------- */
  function readAsDataUrl(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(new Error("The file could not be read.")); };
      reader.readAsDataURL(file);
    });
  }

  function uploadFile(file) {
    if (UPLOAD_MAX && file.size > UPLOAD_MAX) {
      return Promise.reject(new Error(file.name + " is larger than " + humanSize(UPLOAD_MAX) + "; paste a public URL instead."));
    }
    return readAsDataUrl(file).then(function (dataUrl) {
      return api("POST", "/api/v1/generate.php", { model: UPLOAD_MODEL, input: { file_url: dataUrl, file_name: file.name.slice(0, 100) } });
    }).then(function (reply) {
      if (reply.status !== 202) throw new Error(reply.data.message || "The upload was refused (HTTP " + reply.status + ").");
      return pollJob(reply.data.job_id);
    }).then(function (job) {
      if (job.status !== "completed" || !job.outputs.length) throw new Error((job.error && job.error.message) || "The upload failed.");
      return job.outputs[0].url;
    });
  }

  document.querySelectorAll("[data-upload-for]").forEach(function (picker) {
    picker.addEventListener("change", function () {
      var target = document.getElementById(picker.getAttribute("data-upload-for"));
      var status = document.querySelector('[data-upload-status="' + target.id + '"]');
      var files = Array.prototype.slice.call(picker.files || []);
      if (!files.length) return;
      if (!AUTHENTICATED) { window.location.href = LOGIN_URL; return; }
      if (picker.hasAttribute("data-upload-direct")) {
        // The upload model's own page: the file itself is the input, sent as a data: URL when you generate.
        var file = files[0];
        if (UPLOAD_MAX && file.size > UPLOAD_MAX) {
          status.textContent = file.name + " is larger than " + humanSize(UPLOAD_MAX) + ".";
          return;
        }
        readAsDataUrl(file).then(function (dataUrl) {
          target.value = dataUrl;
          var name = document.getElementById("f-file_name");
          if (name && !name.value) name.value = file.name.slice(0, 100);
          status.textContent = file.name + " (" + humanSize(file.size) + ") is ready; press Generate to store it.";
        }, function (error) { status.textContent = error.message; });
        return;
      }
      status.textContent = "Uploading " + (files.length === 1 ? files[0].name : files.length + " files") + "…";
      Promise.all(files.map(uploadFile)).then(function (urls) {
        if (target.getAttribute("data-control") === "urls") {
          target.value = (target.value.trim() ? target.value.trim() + "\n" : "") + urls.join("\n");
        } else {
          target.value = urls[0];
        }
        target.dispatchEvent(new Event("input", { bubbles: true }));
        status.textContent = "Uploaded.";
      }, function (error) {
        status.textContent = error.message;
      }).then(function () { picker.value = ""; });
    });
  });

  /* --- Publish to the showroom -------------------------------------------------------------------------- */
  publishForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var status = q("[data-publish-status]", publishForm);
    var button = q("button[type=submit]", publishForm);
    button.disabled = true;
    status.textContent = "Publishing…";
    api("POST", "/api/v1/showroom_publish.php", {
      job_id: currentJobId,
      title: q("#publish-title", publishForm).value.trim(),
      show_prompt: q("#publish-show-prompt", publishForm).checked,
    }).then(function (reply) {
      status.textContent = "";
      if (reply.ok) {
        status.appendChild(document.createTextNode("Published. "));
        var link = document.createElement("a");
        link.href = reply.data.url || "/showroom.php";
        link.textContent = "See it in the showroom";
        status.appendChild(link);
        return;
      }
      if (reply.status === 404 && /No endpoint/.test(reply.data.message || "")) {
        status.textContent = "The showroom is not available on this instance yet.";
      } else {
        status.textContent = reply.data.message || "Publishing failed (HTTP " + reply.status + ").";
      }
      button.disabled = false;
    }, function () {
      status.textContent = "The server could not be reached.";
      button.disabled = false;
    });
  });

  /* --- Remix: ?remix=<publication id> prefills the form with a showroom item's input -------------------- */
  if (REMIX_ID) {
    var remixStatus = q("[data-remix-status]", form);
    api("GET", "/api/v1/showroom_remix.php?id=" + encodeURIComponent(REMIX_ID)).then(function (reply) {
      remixStatus.hidden = false;
      if (!reply.ok || !reply.data.success) {
        remixStatus.className = "alert alert-warning";
        remixStatus.textContent = reply.status === 404 ? "That showroom item is no longer available to remix."
          : (reply.data.message || "The remix could not be loaded.");
        return;
      }
      if (reply.data.model !== MODEL) {
        window.location.replace("/model-playground.php?model=" + encodeURIComponent(reply.data.model) + "&remix=" + encodeURIComponent(REMIX_ID));
        return;
      }
      fill(reply.data.input);
      remixStatus.textContent = "Prefilled from a showroom item. Change anything, then generate your own.";
    }, function () {
      remixStatus.hidden = false;
      remixStatus.textContent = "The remix could not be loaded.";
    });
  }

  if (RESUME_JOB && AUTHENTICATED) startJob(RESUME_JOB);

  updateCost();
})();
