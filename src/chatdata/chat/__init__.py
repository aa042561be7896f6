"""Chat rendering (StarChat, ChatML, Guanaco, tokenizer templates) and label-mask validation."""
