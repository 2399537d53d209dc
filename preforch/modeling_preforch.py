"""preforch's reward models, classifiers and orchestrators as `transformers` sequence classifiers.

Every folder `train-rm` (`--levels` too) or `train-orchestrator` saves also holds a `config.json` of model_type
`preforch` and this file, so code that never imports preforch loads it with the auto classes and
`pipeline("text-classification")`:

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)   # without preforch
    import preforch.modeling_preforch; AutoModelForSequenceClassification.from_pretrained(folder)  # registered

- a reward model gives one logit per objective (`id2label`), the raw score preforch's scorer reads; the
  normalisation statistics fitted on its training replies are in `config.normalization` (mean, std per objective);
  a `pipeline` needs `function_to_apply="none"` to return scores rather than a softmax over them;
- MOSLIM's classification reward model (`train-rm --levels`) gives every head's raw class logits, concatenated
  [B, sum L_h] (`id2label` "<objective>/<level>"); `logits.split(config.num_levels, -1)` gives one [B, L_h] per
  objective, whose softmax is that head's level probabilities (`config.level_stats`: the reference-set statistics
  MOSLIM's reward mapping reads); a `pipeline` needs `function_to_apply="none"` here too;
- an orchestrator's logits are divided by its calibrated temperature, so their softmax (a pipeline's default)
  is the preference weight of each objective.
Inputs are tokenised as preforch does: (dialogue tail, reply) text pairs for a reward model or classifier, the prompt
for an orchestrator; the folder's tokenizer (`PreforchTokenizerFast`) formats a raw prompt as preforch does first.
The weights stay where preforch writes them (`encoder/`, `head.safetensors`); a model saved with
`save_pretrained` from here has the usual single weights file. This file imports only torch, safetensors and
transformers: it is copied into each folder for `trust_remote_code`.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig,
                          PreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "preforch"
KINDS = ("reward", "orchestrator", "classifier")


class PreforchConfig(PretrainedConfig):
    """kind: 'reward', 'orchestrator' or 'classifier'; encoder: the encoder's own config (a dict); pooling: mean | cls |
    last | response (the mean over the reply's segment); objectives as id2label (a classifier's classes,
    "<objective>/<level>"); normalization: {"mean": [K], "std": [K]} of a reward model's raw scores (or None);
    weight_temperature: an orchestrator's calibrated softmax temperature; num_levels: a classifier's class count per
    head (its logits' split); level_stats: a classifier's reference-set statistics (rewards/levels.py LevelStats);
    input_tokens / prompt_max_tokens: the tokenisation preforch used (not `max_length` / `temperature`, which
    transformers reads as generation settings)."""

    model_type = MODEL_TYPE

    def __init__(self, kind: str = "reward", encoder: dict | None = None, pooling: str = "mean", input_tokens: int = 128,
                 prompt_max_tokens: int = 64, normalization: dict | None = None, tau: float | None = None,
                 weight_temperature: float = 1.0, num_levels: list[int] | None = None, level_stats: dict | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        self.kind, self.encoder, self.pooling = kind, encoder or {}, pooling
        self.input_tokens, self.prompt_max_tokens = input_tokens, prompt_max_tokens
        self.normalization, self.tau, self.weight_temperature = normalization, tau, weight_temperature
        self.num_levels, self.level_stats = num_levels, level_stats


def _pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """[B, T, H], [B, T] -> [B, H]: masked mean, first token, or last unmasked token."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class PreforchModel(PreTrainedModel):
    """`head(pool(encoder(x)))`: logits [B, K], one per objective (an orchestrator's divided by its temperature), or a
    classifier's class logits [B, sum L_h]."""

    config_class = PreforchConfig
    base_model_prefix = "encoder"

    def __init__(self, config: PreforchConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(
            AutoConfig.for_model(**config.encoder))
        self.head = nn.Linear(self.encoder.config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        enc = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            enc["token_type_ids"] = token_type_ids
        mask = attention_mask
        if self.config.pooling == "response":
            mask = mask * token_type_ids  # the reply is the second segment of the text pair
        how = "mean" if self.config.pooling == "response" else self.config.pooling
        logits = self.head(_pool(self.encoder(**enc).last_hidden_state, mask, how))
        if self.config.kind == "orchestrator":
            logits = logits / self.config.weight_temperature
        return SequenceClassifierOutput(logits=logits)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, **kwargs):
        """A folder preforch wrote (`encoder/` + `head.safetensors`) loads its parts from there; anything else
        (a model saved from this class, a Hub id) loads as any `transformers` model."""
        path = str(pretrained_model_name_or_path)
        if not os.path.isfile(os.path.join(path, "head.safetensors")):
            return super().from_pretrained(pretrained_model_name_or_path, *args, config=config, **kwargs)
        from safetensors.torch import load_file

        config = config if isinstance(config, PreforchConfig) else PreforchConfig.from_pretrained(path)
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        encoder = AutoModel.from_pretrained(os.path.join(path, "encoder"),
                                            **({"dtype": dtype} if dtype not in (None, "auto") else {}))
        model = cls(config, encoder)
        model.head.load_state_dict(load_file(os.path.join(path, "head.safetensors")))
        return model.to(encoder.dtype).eval()


_SPEAKERS = ("Human: ", "Assistant: ", "System: ")  # preforch's rewards/formatting.py render_dialogue


def _is_dialogue(text: str) -> bool:
    return any(line.startswith(_SPEAKERS) for line in text.splitlines())


class PreforchTokenizerFast:
    """A folder's tokenizer as transformers users meet it (preforch itself reads the plain one in `encoder/`): a raw
    prompt is formatted as preforch formats it before encoding, so `pipeline("text-classification", model=folder)`
    on raw text gives preforch's own weights and scores. A prompt becomes `Human: <prompt>` (rewards/formatting.py);
    for a reward model or classifier whose tokenizer has a chat template, (prompt, reply) becomes the conversation
    the template renders. Text that is already a dialogue (a line opening with `Human: `, `Assistant: ` or
    `System: `), and a chat-template model's text without a reply, pass unchanged. preforch keeps the end of prompts longer
    than the model's input; this class does not cut them.

    Loading gives the folder's own tokenizer class (`preforch_base_class` in tokenizer_config.json) with this
    formatting mixed in, so every tokenizer family keeps its own behaviour."""

    preforch_kind = "reward"

    @classmethod
    def from_pretrained(cls, name_or_path, *args, **kwargs):
        import json

        from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
        from transformers.utils import cached_file

        with open(cached_file(name_or_path, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        base = tokenizer_class_from_name(config["preforch_base_class"])
        tokenizer = base.from_pretrained(name_or_path, *args, **kwargs)
        tokenizer.__class__ = type(cls.__name__, (cls, type(tokenizer)), {})
        tokenizer.preforch_kind = config.get("preforch_kind", "reward")
        return tokenizer

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoTokenizer"):
        """Called by trust_remote_code loading; the folder's tokenizer_config.json already holds the auto_map."""

    def _encode_plus(self, text, text_pair=None, **kwargs):  # the one path every call of a fast tokenizer takes
        if kwargs.get("is_split_into_words"):
            return super()._encode_plus(text, text_pair, **kwargs)
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = None if text_pair is None else [text_pair] if isinstance(text_pair, str) else list(text_pair)
        templated = self.preforch_kind != "orchestrator" and getattr(self, "chat_template", None)
        if templated and pairs is not None:
            texts = [t if _is_dialogue(t) else self.apply_chat_template(
                [{"role": "user", "content": t}, {"role": "assistant", "content": r}], tokenize=False)
                for t, r in zip(texts, pairs)]
            pairs = None
        elif not templated:  # (a templated model's text without a reply is a rendered conversation already)
            texts = [t if _is_dialogue(t) else f"Human: {t}" for t in texts]
        return super()._encode_plus(texts[0] if single else texts,
                                    None if pairs is None else pairs[0] if single else pairs, **kwargs)


def export_tokenizer(folder: str, kind: str) -> None:
    """Make the tokenizer saved at the top of `folder` load as a `PreforchTokenizerFast` (tokenizer_config.json's
    class and `auto_map` for trust_remote_code; its own class kept as `preforch_base_class`)."""
    import json

    file = os.path.join(folder, "tokenizer_config.json")
    with open(file, encoding="utf-8") as f:
        config = json.load(f)
    config.update(preforch_base_class=config.get("tokenizer_class"), tokenizer_class="PreforchTokenizerFast",
                  preforch_kind=kind,
                  auto_map={"AutoTokenizer": [None, "modeling_preforch.PreforchTokenizerFast"]})
    with open(file, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def hf_config(kind: str, labels, encoder_config, pooling: str, input_tokens: int, prompt_max_tokens: int = 64,
              **extra) -> PreforchConfig:
    """The config.json of a preforch folder: labels (objectives, or a classifier's classes) as id2label, the
    encoder's config inline, auto_map for `trust_remote_code` loading."""
    config = PreforchConfig(kind=kind, encoder=encoder_config.to_dict(), pooling=pooling, input_tokens=input_tokens,
                            prompt_max_tokens=prompt_max_tokens, id2label=dict(enumerate(labels)),
                            label2id={o: i for i, o in enumerate(labels)}, **extra)
    config.auto_map = {"AutoConfig": "modeling_preforch.PreforchConfig",
                       "AutoModelForSequenceClassification": "modeling_preforch.PreforchModel"}
    return config


AutoConfig.register(MODEL_TYPE, PreforchConfig, exist_ok=True)
AutoModelForSequenceClassification.register(PreforchConfig, PreforchModel, exist_ok=True)
AutoTokenizer.register(PreforchConfig, fast_tokenizer_class=PreforchTokenizerFast, exist_ok=True)
