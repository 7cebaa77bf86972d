"""Makes this folder's other prediction files and their expected scores (see README.md): for each
subset, predictions that are the references themselves and a shuffled set; and `edge/`, DART-form
lines for the edge cases (an empty prediction, a context whose references are all empty, 1 and 35
references, an empty reference beside a real one).

  python3 make_cases.py PEER SCORE_PEER OUT

PEER and SCORE_PEER as for make_subsets.py; OUT is this folder (the subsets must already be there).
"""
import json, os, random, subprocess, sys, tempfile

peer, score_peer, out = sys.argv[1], sys.argv[2], sys.argv[3]  # then --edge-only: only edge/
SETS = {"webnlg": "webnlg_challenge_2017", "dart": "dart"}
EOS = 50256


def read_jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf8")]


def encoded(task):
    """Each (context, completion) text pair of the whole test set, with its completion's BPE ids."""
    src = os.path.join(peer, "data", SETS[task])
    enc = read_jsonl(os.path.join(src, "test.jsonl"))
    fmt = read_jsonl(os.path.join(src, "test_formatted.jsonl"))
    return fmt, {(f["context"], f["completion"]): e["completion"] for e, f in zip(enc, fmt)}


def padded(ids):
    """gpt2_beam.py's line: the ids up to EOS, EOS, zeros up to eval_len 64."""
    ids = [t for t in ids if t != EOS] + [EOS]
    return ids + [0] * max(0, 64 - len(ids))


def write_predictions(path, rows):
    with open(path, "w") as w:
        for i, ids in enumerate(rows):
            w.write(json.dumps({"id": i, "predict": padded(ids)}) + "\n")


def peer_scores(task, predictions, formatted, flt):
    run = tempfile.mkdtemp(prefix=f"webnlg_dart_cases_{task}_{flt}_")
    args = [sys.executable, score_peer, "--task", task, "--predictions", predictions, "--formatted", formatted,
            "--filter", flt, "--metrics", "bleu,meteor,ter,chrf++", "--out", run]
    res = subprocess.run(args, env=dict(os.environ, WEBNLG_PEER=peer), capture_output=True, text=True)
    if res.returncode == 0:
        last = json.loads(res.stdout.splitlines()[-1])
        return {"items": last["items"], "eval_py_final_newline_stripped": last["full"]}
    # score_peer.py refuses eval.py's METEOR -1 and shows eval.py's output: take its results.
    found = [l for l in res.stderr.splitlines() if l.startswith("@@RESULT ")]
    if not found or json.loads(found[-1][9:]).get("meteor") != -1:
        sys.exit(res.stderr)
    items = sum(1 for _ in open(os.path.join(run, f"hypothesis_{task}"), encoding="utf8"))
    return {"items": items, "eval_py_final_newline_stripped": json.loads(found[-1][9:])}


def subset_cases(task):
    """refs: every line predicts its context's first reference; shuf: another context's
    (random.Random(0) over the subset's contexts)."""
    _, ids_of = encoded(task)
    formatted = os.path.join(out, task, "test_formatted.jsonl")
    lines = read_jsonl(formatted)
    first = {}
    for line in lines:
        first.setdefault(line["context"], ids_of[(line["context"], line["completion"])])
    contexts = list(first)
    other = contexts[:]
    random.Random(0).shuffle(other)
    other = dict(zip(contexts, other))
    cases = {
        "refs": [first[l["context"]] for l in lines],
        "shuf": [first[other[l["context"]]] for l in lines],
    }
    expected = {}
    for name, rows in cases.items():
        path = os.path.join(out, task, f"predictions_{name}.jsonl")
        write_predictions(path, rows)
        filters = ["all", "seen", "unseen"] if task == "webnlg" else ["all"]
        expected[name] = {flt: peer_scores(task, path, formatted, flt) for flt in filters}
    return expected


def edge_case():
    """DART-form lines: the 35-reference context, the context with an empty reference, a made-up
    context whose two references are empty, contexts with one reference. predictions.jsonl:
    two items predict nothing (EOS at once), the rest a cut of their own reference or, for the
    made-up context, another's. predictions_last_empty.jsonl: the same with the last item's
    prediction empty too, which makes eval.py's METEOR file one line short (it fails, -1)."""
    fmt, ids_of = encoded("dart")
    groups = {}
    for i, line in enumerate(fmt):
        groups.setdefault(line["context"], []).append(i)
    biggest = max(groups.values(), key=len)
    empty_ref = next(g for g in groups.values() if any(fmt[i]["completion"] == "" for i in g))
    singles = [g for g in groups.values() if len(g) == 1][:6]
    picked = [fmt[i] for g in [biggest, empty_ref] + singles for i in g]
    made_up = {"context": "Edge case : references : all empty", "completion": ""}
    lines = picked[:3] + [made_up] + picked[3:] + [made_up]
    empty = {len(biggest), len(lines) - 4}  # the 35 references' item, a middle single's
    rows = []
    for k, line in enumerate(lines):
        if k in empty:
            rows.append([])
        elif line is made_up:
            rows.append(ids_of[(fmt[singles[0][0]]["context"], fmt[singles[0][0]]["completion"])])
        else:
            rows.append(ids_of[(line["context"], line["completion"])][: 8 + k % 7])
    dst = os.path.join(out, "edge")
    os.makedirs(dst, exist_ok=True)
    formatted = os.path.join(dst, "test_formatted.jsonl")
    with open(formatted, "w", encoding="utf8") as w:
        for line in lines:
            w.write(json.dumps(line, ensure_ascii=False) + "\n")
    expected = {}
    path = os.path.join(dst, "predictions.jsonl")
    write_predictions(path, rows)
    expected["mixed"] = {"all": peer_scores("dart", path, formatted, "all")}
    rows[len(lines) - 2] = []  # the last single: the last item
    path = os.path.join(dst, "predictions_last_empty.jsonl")
    write_predictions(path, rows)
    expected["last_empty"] = {"all": peer_scores("dart", path, formatted, "all")}
    return expected


def main():
    for task in SETS if "--edge-only" not in sys.argv else []:
        expected = subset_cases(task)
        with open(os.path.join(out, task, "expected_scores_refs_shuf.json"), "w") as w:
            json.dump(expected, w, indent=1, sort_keys=True)
            w.write("\n")
        print(task, {k: {f: s["items"] for f, s in v.items()} for k, v in expected.items()})
    expected = edge_case()
    with open(os.path.join(out, "edge", "expected_scores.json"), "w") as w:
        json.dump(expected, w, indent=1, sort_keys=True)
        w.write("\n")
    print("edge", expected)


main()
