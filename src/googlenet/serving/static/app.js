"use strict";
// The page: send each chosen image to POST /v1/predict, show its top-5 as bars, and (torch
// backend) beside them the Grad-CAM overlay from POST /v1/explain.
const $ = (id) => document.getElementById(id);
const keyInput = $("key");
let backend = "";

function headers() {
  const key = keyInput.value || localStorage.getItem("googlenet-key") || "";
  if (keyInput.value) localStorage.setItem("googlenet-key", keyInput.value);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadModel() {
  const response = await fetch("/v1/model", { headers: headers() });
  if (response.status === 401) { $("key-box").hidden = false; $("key-box").open = true; }
  if (!response.ok) { $("model").textContent = "model: unavailable"; return; }
  const model = await response.json();
  backend = model.backend;
  $("model").textContent =
    `${model.id} · variant ${model.variant} · ${model.num_classes} classes · ${model.backend}`;
}

function card(file) {
  const element = document.createElement("article");
  element.className = "card";
  const image = document.createElement("img");
  image.alt = file.name;
  image.src = URL.createObjectURL(file);
  const body = document.createElement("div");
  body.className = "body";
  const title = document.createElement("h2");
  title.textContent = file.name;
  const status = document.createElement("p");
  status.className = "muted";
  status.textContent = "predicting…";
  const result = document.createElement("div");
  result.className = "result";
  const list = document.createElement("div");
  result.append(list);
  body.append(title, status, result);
  element.append(image, body);
  $("results").prepend(element);
  return { body: list, result, status };
}

async function explain(file, result) {
  const form = new FormData();
  form.append("files", file, file.name);
  const figure = document.createElement("figure");
  figure.className = "overlay";
  const caption = document.createElement("figcaption");
  caption.textContent = "where it looked…";
  figure.append(caption);
  result.append(figure);
  try {
    const response = await fetch("/v1/explain", { method: "POST", body: form, headers: headers() });
    const answer = await response.json();
    if (!response.ok) { caption.textContent = answer.error || `error ${response.status}`; return; }
    const overlay = document.createElement("img");
    overlay.alt = `Grad-CAM of ${answer.class}`;
    overlay.src = answer.overlay;
    figure.prepend(overlay);
    caption.textContent = `${answer.class}: ${answer.method} on ${answer.layer}`;
  } catch (error) {
    caption.textContent = `no overlay (${error})`;
  }
}

function bars(body, top) {
  for (const { class: name, probability } of top) {
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = name;
    const value = document.createElement("span");
    value.textContent = `${(100 * probability).toFixed(1)}%`;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${Math.max(1, 100 * probability)}%`;
    track.append(fill);
    row.append(label, value, track);
    body.append(row);
  }
}

async function predict(file) {
  const { body, result, status } = card(file);
  const form = new FormData();
  form.append("files", file, file.name);
  const started = performance.now();
  try {
    const response = await fetch("/v1/predict?top_k=5", { method: "POST", body: form, headers: headers() });
    const answer = await response.json();
    if (!response.ok) {
      status.className = "error";
      status.textContent = answer.error || `error ${response.status}`;
      return;
    }
    const ms = performance.now() - started;
    status.textContent = `${ms.toFixed(0)} ms (model ${answer.timings.model_ms.toFixed(0)} ms)`;
    bars(body, answer.predictions[0].top);
    if (backend === "torch") explain(file, result);
  } catch (error) {
    status.className = "error";
    status.textContent = `the server could not be reached (${error})`;
  }
}

function handle(files) {
  showError("");
  for (const file of files) predict(file);
}

$("files").addEventListener("change", (event) => handle(event.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  handle(event.dataTransfer.files);
});
keyInput.addEventListener("change", loadModel);
loadModel();
