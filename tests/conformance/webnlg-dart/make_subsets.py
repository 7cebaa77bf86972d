"""Makes this folder's WebNLG and DART subsets, their predictions, and what microsoft/LoRA's
gpt2_decode.py and WebNLG/GenerationEval's eval.py make of them (see README.md).

  python3 make_subsets.py PEER SCORE_PEER OUT

PEER: the runnable copy of the users' tools (gpt2_decode.py, eval.py, the whole test sets in
PEER/data) that the team's webnlg_dart/setup.sh builds; SCORE_PEER: that folder's score_peer.py,
which runs gpt2_decode.py and eval.py unmodified. None of their code is copied here.
"""
import json, os, random, subprocess, sys, tempfile

peer, score_peer, out = sys.argv[1], sys.argv[2], sys.argv[3]
SETS = {"webnlg": "webnlg_challenge_2017", "dart": "dart"}


def groups_of(lines):
    groups = {}
    for i, line in enumerate(lines):
        groups.setdefault(line["context"], []).append(i)
    return list(groups.values())


def choose(task, lines):
    """Whole context groups, kept in the test file's line order."""
    groups = groups_of(lines)
    if task == "webnlg":
        seen = [g for g in groups if lines[g[0]]["cate"]]
        unseen = [g for g in groups if not lines[g[0]]["cate"]]
        big = [g for g in groups if len(g) > 6]          # 7 and 8 references: cut at 6
        picked = seen[:60] + unseen[:60] + big
    else:
        first = groups[:80]                              # holds line 116, DART's empty reference
        apart = [g for g in groups if g[-1] - g[0] + 1 != len(g)][:12]   # contexts that rejoin later
        big = [g for g in groups if len(g) > 6][:4]      # 7 to 35 references: cut at 6
        picked = first + apart + big
    return sorted({i for g in picked for i in g})


def main():
    rng = random.Random(1)
    runs = tempfile.mkdtemp(prefix="webnlg_dart_runs_")
    for task, folder in SETS.items():
        src = os.path.join(peer, "data", folder)
        fmt = [l.rstrip("\n") for l in open(os.path.join(src, "test_formatted.jsonl"), encoding="utf8")]
        enc = [json.loads(l) for l in open(os.path.join(src, "test.jsonl"))]
        lines = [json.loads(l) for l in fmt]
        keep = choose(task, lines)
        dst = os.path.join(out, task)
        os.makedirs(dst, exist_ok=True)
        with open(os.path.join(dst, "test_formatted.jsonl"), "w", encoding="utf8") as w:
            for i in keep:
                w.write(fmt[i] + "\n")
        # Each line predicts a completion of its own context (6 in 10) or of any line, with
        # tokens dropped and neighbours swapped now and then, so scores are neither 0 nor
        # perfect and two lines of one context differ (the one read last wins); then EOS and
        # zeros up to eval_len 64, as gpt2_beam.py pads.
        groups = {i: g for g in groups_of(lines) for i in g}
        with open(os.path.join(dst, "predictions.jsonl"), "w") as w:
            for new_id, old_id in enumerate(keep):
                source = rng.choice(groups[old_id]) if rng.random() < 0.6 else rng.randrange(len(enc))
                ids = [t for t in enc[source]["completion"][:-1] if rng.random() > 0.08]
                for k in range(len(ids) - 1):
                    if rng.random() < 0.05:
                        ids[k], ids[k + 1] = ids[k + 1], ids[k]
                ids.append(50256)
                w.write(json.dumps({"id": new_id, "predict": ids + [0] * max(0, 64 - len(ids))}) + "\n")
        filters = ["all", "seen", "unseen"] if task == "webnlg" else ["all"]
        scores = {}
        for flt in filters:
            run = os.path.join(runs, f"{task}_{flt}")
            args = [sys.executable, score_peer, "--task", task, "--predictions",
                    os.path.join(dst, "predictions.jsonl"), "--formatted",
                    os.path.join(dst, "test_formatted.jsonl"), "--filter", flt,
                    "--metrics", "bleu,meteor,ter,chrf++"]
            env = dict(os.environ, WEBNLG_PEER=peer)
            res = json.loads(subprocess.run(args + ["--out", run], env=env, check=True,
                                            capture_output=True, text=True).stdout.splitlines()[-1])
            # The README's eval.py command on gpt2_decode.py's files as written (final newline
            # kept), its table as printed: what --eval-py-verbatim reproduces.
            py = os.path.join(peer, "venv", "bin", "python")
            env_py = dict(env, NLTK_DATA=os.path.join(peer, "nltk_data"),
                          PYTHONPATH=os.path.join(peer, "stubs"), PYTHONIOENCODING="utf-8")
            table = subprocess.run([py, "eval.py", "-R", os.path.join(run, f"references_{task}", "reference"),
                                    "-H", os.path.join(run, f"hypothesis_{task}"), "-nr", "6",
                                    "-m", "bleu,meteor,ter"], cwd=os.path.join(run, "geval_cwd"), env=env_py,
                                   check=True, capture_output=True, text=True).stdout.splitlines()[-3:]
            scores[flt] = {"items": res["items"], "eval_py_final_newline_stripped": res["full"]}
            open(os.path.join(dst, f"eval_py_as_is_{flt}.txt"), "w").write("\n".join(table) + "\n")
            files = os.path.join(dst, f"gpt2_decode_{flt}")
            os.makedirs(files, exist_ok=True)
            for i in range(6):
                name = f"reference{i}"
                data = open(os.path.join(run, f"references_{task}", name), "rb").read()
                open(os.path.join(files, name), "wb").write(data)
            data = open(os.path.join(run, f"hypothesis_{task}"), "rb").read()
            open(os.path.join(files, "hypothesis"), "wb").write(data)
        with open(os.path.join(dst, "expected_scores.json"), "w") as w:
            json.dump(scores, w, indent=1, sort_keys=True)
            w.write("\n")
        print(task, len(keep), "lines", {f: s["items"] for f, s in scores.items()})


main()
