"""A toy Punkt model (our own parameters, not nltk_data's) in both forms nltk reads, and the
sentences and tokens nltk 3.5 gives with it: the Rust Punkt's tests, without the licence-less
English model. Run with nltk 3.5: python3 make_toy.py"""
import json, os, pickle
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktLanguageVars
from nltk.tokenize.destructive import NLTKWordTokenizer

params = PunktParameters()
params.abbrev_types = {"dr", "mr", "u.s", "inc", "e.g", "st", "no", "calif", "co"}
params.collocations = {("##number##", "percent"), ("j", "smith")}
params.sent_starters = {"the", "however", "he"}
for word, flags in {"smith": 2 + 4, "he": 2 | 16 | 32, "the": 2 | 16 | 32 | 64, "percent": 32, "paris": 4,
                    "it": 2 | 32, "no": 2 | 32, "apple": 2 | 4}.items():
    params.ortho_context[word] = flags
tokenizer = PunktSentenceTokenizer()
tokenizer._params = params
with open("toy.pickle", "wb") as f:
    pickle.dump(tokenizer, f, protocol=3)
os.makedirs("toy_tab", exist_ok=True)
with open("toy_tab/abbrev_types.txt", "w") as f:
    f.write("".join(a + "\n" for a in sorted(params.abbrev_types)))
with open("toy_tab/sent_starters.txt", "w") as f:
    f.write("".join(a + "\n" for a in sorted(params.sent_starters)))
with open("toy_tab/collocations.tab", "w") as f:
    f.write("".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations)))
with open("toy_tab/ortho_context.tab", "w") as f:
    f.write("".join(f"{w}\t{n}\n" for w, n in sorted(params.ortho_context.items())))
texts = [
    "Dr. Smith went to Paris. He liked it.",
    "It rose 5. percent today. The end.",
    "J. Smith and e.g. apples. Apple shares fell... The rest?",
    "Prices (in U.S. dollars) rose. \"Yes.\" he said. (Really.) Done",
    "No. 5 is here! no. it is not. St. Louis Co. is big.",
    "Wait... what?! \u201cOK.\u201d Then -- nothing.",
    "A. B. C. smith. Smith. 1.5 2.",
    "Calif. residents rejoiced.\n\nNew paragraph here. x.y. z",
    "  leading space. trailing space.   ",
    "",
]
wt = NLTKWordTokenizer()
with open("expected.jsonl", "w", encoding="utf8") as f:
    for t in texts:
        sents = tokenizer.tokenize(t)
        f.write(json.dumps({"text": t, "sentences": sents, "tokens": [tok for s in sents for tok in wt.tokenize(s)]},
                           ensure_ascii=False) + "\n")
