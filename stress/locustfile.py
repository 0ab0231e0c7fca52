"""The stress mix against a running API: `python -m stress run` starts the API and this file.

~95% /recommend over a broad set of known products (n in 5, 10, 20, 100) and some new ones, plus
/health, /metrics, /users/{id} and CSV audiences. Every answer is checked for content (stress.checks)
and marked failed when wrong, not only when its status is.
"""
from __future__ import annotations

import os
import random
from collections import deque

from locust import FastHttpUser, between, task

from stress.checks import check_csv, check_health, check_metrics, check_recommend, check_user

NEW_PRODUCTS = (10**15, 10**15 + 10**9)  # far above any id a run holds: always the fallback
SIZES = (5, 10, 20, 100)
WAIT = tuple(float(x) for x in os.environ.get("STRESS_WAIT", "0.1,0.5").split(","))

known_products: list[int] = []
known_users: deque[int] = deque(maxlen=2000)
sizes: list[int] = []  # the n values the run's depth allows


class AudienceClient(FastHttpUser):
    wait_time = between(*WAIT)

    def on_start(self) -> None:
        if not known_products:  # the first users of each process load a broad sample
            with self.client.get("/metrics", name="/metrics", catch_response=True) as resp:
                depth = resp.json().get("counts", {}).get("depth") if resp.status_code == 200 else None
                if not depth:
                    resp.failure("no run depth in /metrics")
                    return
                sizes[:] = [n for n in SIZES if n <= depth] or [depth]
            with self.client.get("/products/sample?n=1000", name="/products/sample",
                                 catch_response=True) as resp:
                products = resp.json().get("sample_products") if resp.status_code == 200 else None
                if not products:
                    resp.failure("no sample of known products")
                    return
                known_products.extend(products)

    def _recommend(self, product_id: int, name: str, cold_start: bool) -> None:
        n = random.choice(sizes)
        with self.client.get(f"/recommend/{product_id}?n={n}", name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                return
            body = resp.json()
            problem = check_recommend(body, product_id, n, cold_start)
            if problem:
                resp.failure(problem)
            elif not cold_start:
                known_users.append(body["recommendations"][0]["customer_id"])

    @task(90)
    def recommend_known(self) -> None:
        if known_products:
            self._recommend(random.choice(known_products), "/recommend/[known]", cold_start=False)

    @task(5)
    def recommend_new(self) -> None:
        if sizes:
            self._recommend(random.randint(*NEW_PRODUCTS), "/recommend/[new]", cold_start=True)

    @task(2)
    def user(self) -> None:
        if known_users:
            customer_id = random.choice(known_users)
            self._check(f"/users/{customer_id}", "/users/[id]", lambda r: check_user(r.json(), customer_id))

    @task(1)
    def audience_csv(self) -> None:
        if known_products:
            product_id, n = random.choice(known_products), random.choice(sizes)
            self._check(f"/audiences/{product_id}.csv?n={n}", "/audiences/[id].csv",
                        lambda r: check_csv(r.text, product_id, n))

    @task(1)
    def health(self) -> None:
        self._check("/health", "/health", lambda r: check_health(r.json()))

    @task(1)
    def metrics(self) -> None:
        self._check("/metrics", "/metrics", lambda r: check_metrics(r.json()))

    def _check(self, path: str, name: str, check) -> None:
        with self.client.get(path, name=name, catch_response=True) as resp:
            problem = f"status {resp.status_code}" if resp.status_code != 200 else check(resp)
            if problem:
                resp.failure(problem)
