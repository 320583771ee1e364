// Smoke test: health, readiness and the model list answer quickly and without errors.
//   docker run --rm -i --network host -e BASE_URL=http://127.0.0.1:8082 grafana/k6 run - <tests/k6/smoke.js
// API_KEY (optional) is sent as Bearer, for a router with keys configured.
import http from "k6/http";
import { check, sleep } from "k6";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8082";
const headers = __ENV.API_KEY ? { Authorization: `Bearer ${__ENV.API_KEY}` } : {};

export const options = {
  vus: 2,
  duration: "20s",
  thresholds: {
    http_req_failed: ["rate<0.01"],
    http_req_duration: ["p(95)<50"],
    checks: ["rate>0.99"],
  },
};

export default function () {
  const health = http.get(`${BASE_URL}/healthz`);
  check(health, { "healthz is 200": (r) => r.status === 200 });
  const ready = http.get(`${BASE_URL}/readyz`);
  check(ready, { "readyz is 200": (r) => r.status === 200 });
  const models = http.get(`${BASE_URL}/v1/models`, { headers });
  check(models, {
    "models is 200": (r) => r.status === 200,
    "models lists auto": (r) => r.status === 200 && r.json("data").some((m) => m.id === "auto"),
  });
  sleep(0.5);
}
