"""Sign-in load for bench/run.sh: CONCURRENCY browsers sign in over and over for DURATION seconds.

Each sign-in is what a browser does: GET /login (a fresh session and its CSRF token), then POST the form with an
email from USERS_FILE and the seeded password. A sign-in counts when the answer is the 303 to the account page.
Only the POST is timed: it holds the argon2 check. Writes a report in the format of bench/wrk/report.lua.

usage: login.py BASE_URL USERS_FILE DURATION_SECONDS CONCURRENCY REPORT_FILE
"""
import http.client
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse

base, users_file, duration, concurrency, report = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
PASSWORD = "bench-password"
host = urllib.parse.urlsplit(base).netloc
emails = itertools.cycle([line.strip() for line in open(users_file) if line.strip()])
lock = threading.Lock()
latencies, failures = [], [0]
refusals = {}  # what failed sign-ins got: a status code, or the exception
deadline = time.monotonic() + duration


def sign_in(conn):
    conn.request("GET", "/login")
    page = conn.getresponse()
    body = page.read().decode()
    cookie = page.getheader("Set-Cookie", "").split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    if page.status != 200 or not token or not cookie:
        return None
    with lock:
        email = next(emails)
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "email": email, "password": PASSWORD})
    started = time.monotonic()
    conn.request("POST", "/login", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    answer = conn.getresponse()
    answer.read()
    return answer.status == 303, time.monotonic() - started, answer.status


def browser():
    conn = http.client.HTTPConnection(host, timeout=30)
    while time.monotonic() < deadline:
        try:
            outcome = sign_in(conn)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(host, timeout=30)
            outcome = (False, 0, type(e).__name__)
        with lock:
            if outcome and outcome[0]:
                latencies.append(outcome[1])
            else:
                failures[0] += 1
                why = str(outcome[2]) if outcome else "login page"
                refusals[why] = refusals.get(why, 0) + 1


started = time.monotonic()
threads = [threading.Thread(target=browser) for _ in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - started
latencies.sort()


def percentile(p):
    return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6) if latencies else 0


with open(report, "w") as f:
    json.dump({
        "requests": len(latencies) + failures[0], "duration_us": int(elapsed * 1e6), "non_2xx": failures[0],
        "socket_errors": 0, "p50_us": percentile(50), "p90_us": percentile(90), "p99_us": percentile(99),
        "mean_us": sum(latencies) / len(latencies) * 1e6 if latencies else 0, "refusals": refusals,
    }, f)
