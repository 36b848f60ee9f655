/// The client program the chaos tests run (python3, standard library only), in two roles:
///
/// - `churn`: loops acquire (random project, mode, model) → hold a random 5–60 ms while
///   listening for lease events → release, printing `GRANT <fence>` and `RELEASE <fence>`;
///   when the daemon goes away it connects again and goes on.
/// - `hold`: takes one lease and keeps it, heartbeating; when the daemon goes away it
///   reconnects and re-attaches, printing `GRANTED <fence>` and then `KEPT <fence>` or
///   `LOST <fence>`; a waiter whose daemon vanished asks again.
enum ChaosClient {
    static let script = #"""
import json, random, socket, sys, time
path, name, role = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(name)

def connect():
    deadline = time.monotonic() + 15
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s, s.makefile("rb")
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            select_wait(0.05)

def select_wait(seconds):
    import select
    select.select([], [], [], seconds)

def ask(s, f, message):
    s.sendall((json.dumps(message) + "\n").encode())
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("daemon went away")
        answer = json.loads(line)
        if "event" in answer and "ok" not in answer:
            continue
        return answer

def say(*words):
    print(*words, flush=True)

def churn():
    # A daemon that goes away is reconnected to; the lease in hand is left to expire.
    while True:
        try:
            churn_on(*connect())
        except (ConnectionError, OSError, ValueError):
            select_wait(0.02)

def churn_on(s, f):
    while True:
        request = {"op": "acquire", "wait_ms": 3000, "ttl_ms": 2000, "holder": name,
                   "project": rng.choice(["alpha", "beta", "gamma"]),
                   "mode": rng.choice(["time", "issue", "mention", "any"])}
        if rng.random() < 0.6:
            request["model"] = rng.choice(["a/x", "b/y"])
            request["fallback"] = rng.choice(["", "b/y", "a/x"])
        answer = ask(s, f, request)
        if not answer.get("ok"):
            continue
        fence = answer["fence"]
        say("GRANT", fence)
        s.settimeout(rng.uniform(0.005, 0.06))
        try:
            s.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            pass
        s.settimeout(None)
        ask(s, f, {"op": "release", "lease": answer["lease"]})
        say("RELEASE", fence)

def hold():
    s, f = connect()
    lease = None
    while True:
        try:
            if lease is None:
                answer = ask(s, f, {"op": "acquire", "wait_ms": 600000, "ttl_ms": 3000, "holder": name})
                if not answer.get("ok"):
                    continue
                lease, fence = answer["lease"], answer["fence"]
                say("GRANTED", fence)
            s.settimeout(0.5)
            try:
                s.recv(1, socket.MSG_PEEK)
            except socket.timeout:
                pass
            s.settimeout(None)
            if not ask(s, f, {"op": "heartbeat", "lease": lease}).get("ok"):
                say("LOST", fence)
                return
        except (ConnectionError, OSError, ValueError):
            s, f = reattach(lease, fence)
            if s is None:
                return

def reattach(lease, fence):
    # A connection made while the old daemon is still dying can be reset by its exit:
    # retry until a daemon answers.
    while True:
        s, f = connect()
        try:
            if lease is not None:
                attached = ask(s, f, {"op": "attach", "lease": lease})
                say("KEPT" if attached.get("ok") else "LOST", fence)
                if not attached.get("ok"):
                    return None, None
            return s, f
        except (ConnectionError, OSError, ValueError):
            s.close()
            select_wait(0.05)

churn() if role == "churn" else hold()
"""#
}
