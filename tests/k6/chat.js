// Chat load test: JSON and streaming chat completions through the router, with thresholds on p95 and errors.
//   docker run --rm -i --network host -e BASE_URL=http://127.0.0.1:8082 grafana/k6 run - <tests/k6/chat.js
// Against `ai-router demo` it needs no key; API_KEY (optional) is sent as Bearer. MODEL defaults to auto.
import http from "k6/http";
import { check } from "k6";
import { Trend } from "k6/metrics";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8082";
const MODEL = __ENV.MODEL || "auto";
const headers = { "Content-Type": "application/json" };
if (__ENV.API_KEY) headers.Authorization = `Bearer ${__ENV.API_KEY}`;

const overhead = new Trend("router_overhead_ms");

const prompts = [
  "hi there!",
  "Translate 'good morning' into Portuguese.",
  "Write a Python function that merges two sorted lists, with tests.",
  "A train leaves at 9:40 and arrives at 13:05. How long is the trip, in minutes?",
];

export const options = {
  scenarios: {
    json: { executor: "constant-vus", vus: 4, duration: "30s", exec: "json" },
    stream: { executor: "constant-vus", vus: 4, duration: "30s", exec: "stream" },
  },
  thresholds: {
    "http_req_failed": ["rate<0.01"],
    "http_req_duration{scenario:json}": ["p(95)<3000"],
    "http_req_duration{scenario:stream}": ["p(95)<5000"],
    "checks": ["rate>0.99"],
  },
};

function body(stream) {
  const content = prompts[Math.floor(Math.random() * prompts.length)];
  return JSON.stringify({ model: MODEL, stream, messages: [{ role: "user", content }] });
}

export function json() {
  const r = http.post(`${BASE_URL}/v1/chat/completions`, body(false), { headers });
  check(r, {
    "json is 200": (res) => res.status === 200,
    "json has a choice": (res) => res.status === 200 && res.json("choices.0.message") !== null,
    "json names its tier": (res) => res.headers["X-Router-Tier"] !== undefined,
  });
  const ms = parseFloat(r.headers["X-Router-Overhead-Ms"]);
  if (!Number.isNaN(ms)) overhead.add(ms);
}

export function stream() {
  const r = http.post(`${BASE_URL}/v1/chat/completions`, body(true), { headers });
  check(r, {
    "stream is 200": (res) => res.status === 200,
    "stream is SSE": (res) => (res.headers["Content-Type"] || "").startsWith("text/event-stream"),
    "stream ends with [DONE]": (res) => res.body.trimEnd().endsWith("data: [DONE]"),
  });
}
