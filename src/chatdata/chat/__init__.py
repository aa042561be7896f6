"""Chat rendering (StarChat, ChatML, Guanaco, tokenizer templates) and label-mask validation."""

from chatdata.chat.dialects import (
    DIALECTS,
    Dialect,
    DialogueError,
    check_dialogues,
    check_messages,
    escape_specials,
    get_dialect,
    parse,
    render,
    render_batch,
    turn_frame,
    unescape_specials,
)
from chatdata.chat.inspect import inspect_messages, read_messages
from chatdata.chat.masks import CONVENTIONS, DEFAULT_CONVENTION, IGNORE_INDEX, MaskBatch, build_masks
from chatdata.chat.tokenizer import TokenizerError, load_tokenizer, prepare_tokenizer
from chatdata.chat.validate import mask_stats, validate_masks

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "DIALECTS",
    "IGNORE_INDEX",
    "Dialect",
    "DialogueError",
    "MaskBatch",
    "TokenizerError",
    "build_masks",
    "check_dialogues",
    "check_messages",
    "escape_specials",
    "get_dialect",
    "inspect_messages",
    "load_tokenizer",
    "mask_stats",
    "parse",
    "prepare_tokenizer",
    "read_messages",
    "render",
    "render_batch",
    "turn_frame",
    "unescape_specials",
    "validate_masks",
]
