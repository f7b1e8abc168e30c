"""Lumos-1 (arXiv 2507.08801): an LLM decoder over text ids and discrete video codes.

- `vocab`: which id means what (official 129,536-id layout, compact built-in layout);
- `sequence`: (prompt, frames of codes) <-> token ids, and the vectorised frame structure;
- `rope`: 1-D / 3-D / MM-RoPE positions and tables;
- `masks`: frame-causal, intra-frame-bidirectional attention;
- `decoder`, `cache`: the model and its KV cache;
- `ardf`: AR-DF training masks, CFG text dropout, the visual-token loss;
- `checkpoint`: released Lumos-1 folders and our own, in one format.
"""

from arvideo.lumos.cache import KVCache
from arvideo.lumos.checkpoint import load_lumos, save_lumos
from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.vocab import Vocab

__all__ = ["DecoderConfig", "KVCache", "LumosDecoder", "Vocab", "load_lumos", "save_lumos"]
