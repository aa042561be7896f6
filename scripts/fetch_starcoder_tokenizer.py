"""Rebuild the StarCoder tokenizer offline from PyPI, for the exact published-example test.

The Hub is out of reach here, but llama.cpp's vocab-only ``models/ggml-vocab-refact.gguf`` (Refact-1.6B uses
StarCoder's tokenizer plus 64 tokens of its own) is vendored in the ``llama-cpp-python`` source distribution on PyPI.
This downloads that sdist with pip, extracts the vocab, keeps StarCoder's 49,152 base tokens and writes a
``tokenizer.json`` folder. Point ``CHATDATA_STARCODER_TOKENIZER`` at the folder to run
``tests/test_chat_masks.py::test_published_example_exact_ids_with_starcoder``.

    python scripts/fetch_starcoder_tokenizer.py --out ~/.cache/chatdata/starcoder
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "llama-cpp-python==0.3.36"
MEMBER = "vendor/llama.cpp/models/ggml-vocab-refact.gguf"
STARCODER_VOCAB = 49152


def fetch_gguf(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", SDIST,
         "-d", str(workdir)],
        check=True,
    )  # fmt: skip
    (sdist,) = workdir.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(MEMBER))
        member.name = Path(member.name).name
        tar.extract(member, workdir, filter="data")
    return workdir / member.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write tokenizer.json into")
    parser.add_argument("--gguf", type=Path, help="use this ggml-vocab-refact.gguf instead of downloading")
    args = parser.parse_args()
    if (args.out / "tokenizer.json").is_file():
        print(f"{args.out}/tokenizer.json exists")
        return 0
    from chatdata.chat.gguf_vocab import tokenizer_from_gguf

    with tempfile.TemporaryDirectory() as tmp:
        gguf = args.gguf or fetch_gguf(Path(tmp))
        tok = tokenizer_from_gguf(gguf, vocab_size=STARCODER_VOCAB)
    newline = tok.convert_tokens_to_ids("Ċ")
    if len(tok) != STARCODER_VOCAB or newline != 203:
        print(f"unexpected vocabulary: {len(tok)} tokens, newline id {newline} (StarCoder: 49152, 203)")
        return 1
    tok.save_pretrained(str(args.out))
    print(f"wrote {args.out}/tokenizer.json (StarCoder vocabulary, {len(tok)} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
