"""token_embedding (words plus spelling, word dropout) and the spelling features it reads."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from taskgraph.errors import TrainError
from taskgraph.spec.components import ModuleConfig
from taskgraph.spec.data import CASES
from taskgraph.train.datasets.text_features import clip_chars, id_table, suffix, word_case, word_shape
from taskgraph.train.modules import build_module
from taskgraph.train.text_modules import CHARS, RARE, WORD

FULL = {"type": "token_embedding", "vocab": 10, "dim": 4, "case_dim": 2, "suffix_vocab": 6, "suffix_dim": 3,
        "shape_vocab": 5, "shape_dim": 2, "char_vocab": 7, "char_dim": 3, "char_filters": 5}


def _module(**changes):
    config = TypeAdapter(ModuleConfig).validate_python({**FULL, **changes})
    return config, build_module(config, None, "embed")


def _tokens(batch: int = 2, time: int = 5, chars: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([
        torch.randint(2, 10, (batch, time), generator=g), torch.ones(batch, time, dtype=torch.long),
        torch.randint(1, len(CASES), (batch, time), generator=g), torch.randint(1, 6, (batch, time), generator=g),
        torch.randint(1, 5, (batch, time), generator=g),
    ], dim=-1)
    letters = torch.randint(1, 7, (batch, time, chars), generator=g)
    return torch.cat([tokens, letters], dim=-1).int()


def test_output_width_is_the_sum_of_the_parts():
    config, module = _module()
    out = module(_tokens())
    assert out.shape == (2, 5, 4 + 2 + 3 + 2 + 5) and config.output_dim(None) == out.shape[-1]
    _, words_only = _module(case_dim=0, suffix_vocab=0, suffix_dim=0, shape_vocab=0, shape_dim=0, char_vocab=0,
                            char_dim=0, char_filters=0)
    assert words_only(_tokens()[..., :CHARS]).shape == (2, 5, 4)


def test_init_scale_sets_the_spread_and_padding_stays_zero():
    _, module = _module(vocab=5000, dim=32, init_scale=0.05)
    assert module.word.weight[1:].std().item() == pytest.approx(0.05, rel=0.05)
    assert (module.word.weight[0] == 0).all()
    plain = build_module(TypeAdapter(ModuleConfig).validate_python({"type": "embedding", "vocab": 5000, "dim": 32,
                                                                      "init_scale": 0.05}), None, "e")
    assert plain.weight[1:].std().item() == pytest.approx(0.05, rel=0.05) and (plain.weight[0] == 0).all()
    default = build_module(TypeAdapter(ModuleConfig).validate_python({"type": "embedding", "vocab": 5000, "dim": 32}),
                           None, "e")
    assert default.weight.std().item() == pytest.approx(1.0, rel=0.05)  # unchanged default: torch's N(0, 1)


def test_word_dropout_hits_rare_words_in_training_only():
    _, module = _module(word_dropout=0.5, case_dim=0, suffix_vocab=0, suffix_dim=0, shape_vocab=0, shape_dim=0,
                        char_vocab=0, char_dim=0, char_filters=0)
    tokens = _tokens(batch=64, time=40)[..., :CHARS]
    tokens[:, :20, RARE] = 0  # the first half of each sentence: frequent words
    torch.manual_seed(0)
    words = module._drop_rare_words(tokens)
    unknown = words == 1
    assert not unknown[:, :20].any()  # never a frequent word
    assert unknown[:, 20:].float().mean().item() == pytest.approx(0.5, abs=0.05)
    torch.manual_seed(0)
    assert torch.equal(module(tokens), module.word(words))  # the forward pass uses the dropped ids
    module.eval()
    assert torch.equal(module._drop_rare_words(tokens), tokens[..., WORD])  # evaluation: the words as they are


def test_character_cnn_ignores_padding_characters():
    _, module = _module()
    module.eval()
    tokens = _tokens(chars=6)
    tokens[..., CHARS + 4:] = 0  # four letters then padding
    longer = torch.cat([tokens, torch.zeros_like(tokens[..., :3])], dim=-1)  # more padding characters
    assert torch.allclose(module(tokens), module(longer), atol=1e-6)
    empty = tokens.clone()
    empty[0, 0] = 0  # a padding word: no characters at all
    assert torch.isfinite(module(empty)).all()


def test_wrong_input_and_ids_past_the_tables_say_what_to_set():
    _, module = _module()
    with pytest.raises(TrainError, match="features: true.*input: tokens"):
        module(torch.randint(0, 10, (2, 5)))
    tokens = _tokens()
    tokens[0, 0, 3] = 6  # suffix id 6 with suffix_vocab 6
    with pytest.raises(TrainError, match="suffix id 6 is past `suffix_vocab: 6`"):
        module(tokens)
    with pytest.raises(TrainError, match="set `chars:`"):
        module(_tokens()[..., :CHARS])


def test_a_part_needs_both_its_sizes():
    with pytest.raises(ValidationError, match="set both `suffix_vocab` and `suffix_dim`"):
        TypeAdapter(ModuleConfig).validate_python({**FULL, "suffix_dim": 0})


def test_spelling_features():
    assert [word_case(w) for w in ("the", "IBM", "Confidence", "McDonald", "1,000", "B-52", "--", "I")] == [
        CASES.index(c) for c in ("lower", "upper", "title", "mixed", "digits", "alnum", "other", "title")]
    assert word_shape("Mid-1990s") == "Xx-dx" and word_shape("1,234.5") == "d,d.d"
    assert suffix("Running", 3) == "ing" and suffix("Go", 3) == "go"
    assert clip_chars("internationalization", 6) == "intion" and clip_chars("cat", 6) == "cat"
    assert id_table(["b", "a", "b", "c", "a", "b"], 4) == {"b": 2, "a": 3}  # by count, then the string
