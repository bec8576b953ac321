"""A Flight SQL client written elsewhere: the ADBC driver (adbc_driver_flightsql
from PyPI), driven by the integration tests (tests/frontend.rs).

    python adbc_client.py '{"uri": "grpc://127.0.0.1:50060",
                            "token": "...",              # or "user" + "password", or neither
                            "tls_root_certs": "PEM",     # optional, for grpc+tls://
                            "steps": [{"sql": "SELECT 1"}, {"objects": true}]}'

Runs the steps in order on one connection and prints one JSON line per step:
{"rows": [...]} (each row a dict), {"objects": {catalog: {schema: [table, ...]}}}
or {"error": "..."} when the step failed (the next steps still run).
{"partitions": "SELECT ..."} runs a statement without fetching it and answers
{"partitions": ["<hex>", ...]} (its Flight endpoints, each with its ticket);
{"timed": "SELECT ...", "n": 40} runs a statement n times and answers
{"seconds": [...]}; with "flood": {"user": ..., "password": ..., "logins": 200}
the logins (another process: each on a new connection, 4 at a time) run
meanwhile, and the answer adds {"refusals": {how: count}}.
{"logins": 200} logs in that often with the spec's credentials.
{"read_partition": "<hex>"} fetches one, as {"rows": [...]} ("last": the first
partition of the last "partitions" step).
{"sql": ..., "params": [...]} runs a prepared statement with those values for
$1, $2, …; {"executemany": "INSERT ...", "rows": [[...], ...]} runs a write
once per row and answers {"rowcount": n}.
{"info": true} answers the driver's GetInfo ({"info": {name: value}});
{"type_info": true} asks the server's XDBC type info with a plain Flight
client (pyarrow.flight) and answers {"rows": [...]}.
{"fuzz": ["SELECT ...", ...], "seed": 7, "n": 1500, "seconds": 90} runs up to
n statements (for at most that long) made by mutating the given ones
(tokens deleted, repeated, swapped, replaced by hostile ones, text cut or
nested) and answers {"fuzz": {"ran", "ok", "errors", "broken": [{"sql",
"error"}]}}: "broken" lists the statements after which the connection no
longer answered `SELECT 1` (it is then made again).
{"cancel": "SELECT ...", "fetch": true|false} plans a statement with a plain
Flight client, starts fetching it (in a thread) when "fetch", waits
"wait_s" seconds, sends Flight's CancelFlightInfo, and answers {"status":
CancelStatus number, "fetch": "rows"|"<error>"|null}.
"""

import collections
import concurrent.futures
import json
import random
import re
import subprocess
import sys
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.flight as flight


def connect(spec):
    kwargs = {}
    if "token" in spec:
        kwargs["adbc.flight.sql.authorization_header"] = "Bearer " + spec["token"]
    if "tls_root_certs" in spec:
        kwargs["adbc.flight.sql.client_option.tls_root_certs"] = spec["tls_root_certs"]
    if "user" in spec:
        kwargs["username"] = spec["user"]
        kwargs["password"] = spec["password"]
    return flight_sql.connect(spec["uri"], db_kwargs=kwargs, autocommit=True)


def objects(conn):
    tree = {}
    for catalog in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
        schemas = tree.setdefault(catalog["catalog_name"], {})
        for schema in catalog["catalog_db_schemas"] or []:
            tables = [t["table_name"] for t in schema["db_schema_tables"] or []]
            schemas[schema["db_schema_name"]] = sorted(tables)
    return tree


last_partitions = []


def log_in_once(spec):
    try:
        with connect(spec) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        return "logged in"
    except Exception as e:
        text = str(e)
        for kind in ("too many failed logins", "wrong password"):
            if kind in text:
                return kind
        return text


def logins(spec, n):
    """n logins with the spec's credentials, 4 at a time, each on a new
    connection; counts how each ended."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ended = list(pool.map(lambda _: log_in_once(spec), range(n)))
    return {"refusals": dict(collections.Counter(ended))}


def timed(conn, s):
    """Runs s["timed"] at least s["n"] times, and while a flood of logins
    (another process) lasts."""
    flood = None
    if "flood" in s:
        f = s["flood"]
        spec = {"uri": s["uri"], "user": f["user"], "password": f["password"], "steps": [{"logins": f["logins"]}]}
        flood = subprocess.Popen([sys.executable, __file__, json.dumps(spec)], stdout=subprocess.PIPE, text=True)
    seconds = []
    with conn.cursor() as cur:
        while len(seconds) < s["n"] or (flood and flood.poll() is None):
            started = time.perf_counter()
            cur.execute(s["timed"])
            cur.fetchall()
            seconds.append(time.perf_counter() - started)
    out = {"seconds": seconds}
    if flood:
        out.update(json.loads(flood.communicate()[0]))
    return out


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def command(name, message=b""):
    """A Flight SQL command: a google.protobuf.Any around `message`."""
    url = ("type.googleapis.com/arrow.flight.protocol.sql." + name).encode()
    return field(1, url) + (field(2, message) if message else b"")


def plain_client(spec):
    """A plain Flight client with the spec's token."""
    client = flight.FlightClient(spec["uri"])
    options = flight.FlightCallOptions(headers=[(b"authorization", ("Bearer " + spec["token"]).encode())])
    return client, options


def type_info(spec):
    client, options = plain_client(spec)
    descriptor = flight.FlightDescriptor.for_command(command("CommandGetXdbcTypeInfo"))
    info = client.get_flight_info(descriptor, options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    return {"rows": table.to_pylist()}


def cancel(spec, s):
    import threading

    client, options = plain_client(spec)
    descriptor = flight.FlightDescriptor.for_command(command("CommandStatementQuery", field(1, s["cancel"].encode())))
    info = client.get_flight_info(descriptor, options)
    fetched = {}

    def fetch():
        try:
            client.do_get(info.endpoints[0].ticket, options).read_all()
            fetched["fetch"] = "rows"
        except Exception as e:
            fetched["fetch"] = str(e)

    fetcher = threading.Thread(target=fetch)
    if s.get("fetch"):
        fetcher.start()
    time.sleep(s.get("wait_s", 0))
    request = field(1, info.serialize())
    results = list(client.do_action(flight.Action("CancelFlightInfo", request), options))
    body = results[0].body.to_pybytes()
    status = body[1] if len(body) >= 2 else 0  # CancelFlightInfoResult: field 1, a varint
    if not s.get("fetch"):
        fetch()  # the result was dropped: fetching it now fails
    else:
        fetcher.join(60)
    return {"status": status, "fetch": fetched.get("fetch")}


HOSTILE = [
    "NULL", "'", '"', "`", "(", ")", ",", "*", ";", "--", "/*", "[", "]", "-1", "0", "1e309",
    "9223372036854775808", "-9223372036854775809", "'NaN'", "''", "MODEL", "STRUCT(", "ML.PREDICT",
    "ML.EVALUATE(MODEL", "@", "@0", "@-1", "@99999999999", "CAST(", "AS", "TRUE", "ARRAY[", "'2024-13-45'",
    "\u00e9\u6f22\U0001f642", "\x00", "\\", "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT",
    "UNION ALL", "JOIN", "OVER (", "PARTITION BY", "EXCEPT", "INTERVAL '1' DAY", "opdb.", "training.",
    "extracts.", "ml.models", "TRANSFORM(", "OPTIONS(", "GENERATE_ARRAY(0, 1, 0)", "0.0/0.0", "1/0",
    "x" * 300, "((((((((((", "))))))))))",
]


def tokens(sql):
    return re.findall(r"'[^']*'|\w+|\s+|.", sql)


def mutate(rng, sql):
    t = tokens(sql)
    for _ in range(rng.randint(1, 3)):
        if not t:
            t = [rng.choice(HOSTILE)]
        i = rng.randrange(len(t))
        op = rng.randrange(7)
        if op == 0:
            del t[i]
        elif op == 1:
            t.insert(i, t[i])
        elif op == 2:
            j = rng.randrange(len(t))
            t[i], t[j] = t[j], t[i]
        elif op == 3:
            t[i] = rng.choice(HOSTILE)
        elif op == 4:
            t.insert(i, " " + rng.choice(HOSTILE) + " ")
        elif op == 5:
            t = t[:i]
        else:
            t = ["SELECT * FROM ("] + t + [") AS nested_q"]
    return "".join(t)


def fuzz(conn, s):
    rng = random.Random(s.get("seed", 7))
    corpus = s["fuzz"]
    deadline = time.monotonic() + s.get("seconds", 90)
    ran = ok = errors = 0
    broken = []
    for _ in range(s.get("n", 1000)):
        if time.monotonic() > deadline:
            break
        sql = mutate(rng, rng.choice(corpus))
        ran += 1
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
            ok += 1
        except Exception:
            errors += 1
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetch_arrow_table()
        except Exception as e:
            broken.append({"sql": sql, "error": f"{type(e).__name__}: {e}"})
            conn = connect(s["spec"])
    return {"fuzz": {"ran": ran, "ok": ok, "errors": errors, "broken": broken}}


def step(conn, s):
    if "fuzz" in s:
        return fuzz(conn, s)
    if "timed" in s:
        return timed(conn, s)
    if "objects" in s:
        return {"objects": objects(conn)}
    if "info" in s:
        return {"info": {k: v for k, v in conn.adbc_get_info().items()}}
    if "type_info" in s:
        return type_info(s["spec"])
    if "cancel" in s:
        return cancel(s["spec"], s)
    with conn.cursor() as cur:
        if "executemany" in s:
            cur.executemany(s["executemany"], s["rows"])
            return {"rowcount": cur.rowcount}
        if "partitions" in s:
            partitions, _ = cur.adbc_execute_partitions(s["partitions"])
            last_partitions[:] = partitions
            return {"partitions": [p.hex() for p in partitions]}
        if "read_partition" in s:
            p = s["read_partition"]
            cur.adbc_read_partition(last_partitions[0] if p == "last" else bytes.fromhex(p))
        elif "params" in s:
            cur.execute(s["sql"], s["params"])
        else:
            cur.execute(s["sql"])
        return {"rows": cur.fetch_arrow_table().to_pylist()}


def main():
    spec = json.loads(sys.argv[1])
    conn = None
    for s in spec["steps"]:
        if "logins" in s:
            print(json.dumps(logins(spec, s["logins"])), flush=True)
            continue
        try:
            if conn is None:
                conn = connect(spec)
            out = step(conn, dict(s, uri=spec["uri"], spec=spec))
        except Exception as e:  # the test asserts on the message
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out, default=str), flush=True)


main()
