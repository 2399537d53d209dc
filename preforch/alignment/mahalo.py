"""`preforch train-mahalo`: MAHALO (pearls-lab/multiobj-align): K heads on one trunk, each pair training only its
objective's head with DPO against the frozen starting model; then every head judged on every objective's
held-out pairs by its implicit reward beta * (log pi_k - log pi_ref).

A small loop on accelerate rather than a TRL DPOTrainer subclass: routing rows to heads reaches into TRL's
concatenated forward, while the loop is short. The reference is the starting model with its single output matrix
W_0, the same for every head, so its log-probs are computed once, before training.

OUTPUT_DIR: policy/ (MultiHeadLM folder with a model card, written at the end), training/log.jsonl (per-step and
per-objective loss, margin, accuracy), training/checkpoint/ (latest state, for --resume), mahalo_run.json (record +
matrix).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from preforch.alignment.config import MahaloConfig
from preforch.alignment.implicit_reward import (implicit_reward_accuracy, length_balanced_accuracy,
                                                own_objective_accuracies)
from preforch.alignment.mahalo_dpo import (balanced_batches, dpo_losses, encode_replies, epoch_steps,
                                           per_objective_loss, sequence_logprobs, with_chosen_nll)
from preforch.data.schema import PreferenceDataset
from preforch.errors import ConfigError, DataError
from preforch.generation.multi_head import MultiHeadLM
from preforch.hub import write_model_card
from preforch.io import atomic_directory, atomic_write_json, atomic_write_text

ARITHMETIC = "arithmetic"
RUN_FILE = "mahalo_run.json"


@torch.no_grad()
def logprobs_by_head(model: MultiHeadLM, tok, pairs: PreferenceDataset, heads: Sequence[Callable], cfg: MahaloConfig,
                     batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed reply log-probs of chosen and rejected under each of K' heads (each a function of the trunk's hidden
    states [B, T, H] -> logits [B, T, V]) -> ([K', N], [K', N]); the trunk runs once per reply."""
    out = []
    for side, replies in (("chosen", [p.chosen for p in pairs]), ("rejected", [p.rejected for p in pairs])):
        cols = []
        for s in tqdm(range(0, len(pairs), batch_size), desc=f"log-probs ({side})", unit="batch", leave=False):
            enc = encode_replies(tok, pairs.prompts[s:s + batch_size], replies[s:s + batch_size],
                                 cfg.max_prompt_tokens, cfg.max_reply_tokens)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            hidden, _ = model.hidden(enc["input_ids"], enc["attention_mask"])
            cols.append(torch.stack([sequence_logprobs(head(hidden), enc["input_ids"], enc["reply_mask"]).cpu()
                                     for head in heads]))
        out.append(torch.cat(cols, dim=1))
    return out[0], out[1]


def starting_head(lm) -> Callable:
    """MAHALO's reference head: the starting model's own output layer W_0 [V, H] (a copy, no adapter), as a function
    of the trunk's hidden states [B, T, H] -> logits [B, T, V]."""
    w0 = lm.get_output_embeddings().weight.detach().clone()
    return lambda hidden: hidden @ w0.T


def reference_logprobs(model: MultiHeadLM, tok, data: dict[str, PreferenceDataset], reference: Callable,
                       cfg: MahaloConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{objective: (chosen, rejected) [N] summed reply log-probs} under the `reference` head on model's trunk."""
    return {o: tuple(x[0] for x in logprobs_by_head(model, tok, d, [reference], cfg)) for o, d in data.items()}


def head_matrix(model: MultiHeadLM, tok, heldout: dict[str, PreferenceDataset], refs: dict | Callable,
                cfg: MahaloConfig, head_names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{head: {data objective: implicit-reward accuracy, margin and `with_length_strata`'s fields}} on each objective's
    held-out pairs. `refs`: {objective: (chosen, rejected) [N] reference log-probs}, or the reference head itself
    (hidden states -> logits) when the reference shares the model's trunk, so its log-probs come from the same pass."""
    table: dict = {h: {} for h in head_names}
    heads = [partial(model.head_logits, head=k) for k in range(len(head_names))]
    for objective, pairs in heldout.items():
        chosen, rejected = logprobs_by_head(model, tok, pairs, heads + ([refs] if callable(refs) else []), cfg)
        ref = (chosen[-1], rejected[-1]) if callable(refs) else refs[objective]
        for k, head in enumerate(head_names):
            table[head][objective] = implicit_reward_accuracy(chosen[k], rejected[k], *ref, cfg.beta, per_pair=True)
    return with_length_strata(table, heldout, tok, cfg)


def with_length_strata(table: dict, heldout: dict[str, PreferenceDataset], tok, cfg: MahaloConfig) -> dict:
    """`head_matrix` cells (with per-pair `correct`) plus `length_balanced_accuracy`'s fields, from the reply tokens
    the log-probs summed (the first cfg.max_reply_tokens). Works on a stored matrix too (scripts/mahalo_eval.py)."""
    for objective, pairs in heldout.items():
        chosen, rejected = (encode_replies(tok, pairs.prompts, replies, cfg.max_prompt_tokens,
                                           cfg.max_reply_tokens)["reply_mask"].sum(1)
                            for replies in ([p.chosen for p in pairs], [p.rejected for p in pairs]))
        for head, row in table.items():
            if objective in row:
                if len(row[objective]["correct"]) != len(pairs):
                    raise DataError(f"head {head!r} on {objective!r}: {len(row[objective]['correct'])} pairs judged, "
                                    f"{len(pairs)} held-out pairs given; give the pairs the matrix was measured on")
                row[objective].update(length_balanced_accuracy(torch.tensor(row[objective]["correct"]), chosen, rejected))
    return table


def heldout_of_run(policy: str | Path, eval_data: Sequence[str] | None,
                   max_eval_pairs: int | None) -> tuple[MahaloConfig, dict[str, PreferenceDataset]]:
    """The config of the train-mahalo run that saved `policy` (read beside it) with eval_data (default: the run's own;
    one spec per objective, 'arithmetic' reads the run's OUTPUT_DIR/data/<objective>_eval.jsonl) and its held-out
    pairs, up to max_eval_pairs per objective."""
    from dataclasses import replace

    from preforch.data.loaders import load_file, load_many

    policy = Path(policy)
    run = policy.parent / RUN_FILE
    if not run.is_file():
        raise ConfigError(f"{run}: not found; the train-mahalo run that saved {policy} writes it")
    run_cfg = json.loads(run.read_text())["config"]
    cfg = replace(MahaloConfig(**run_cfg), eval_data=list(eval_data or run_cfg["eval_data"]),
                  max_eval_pairs=max_eval_pairs)  # checks one spec per objective
    return cfg, {o: (load_file(policy.parent / "data" / f"{o}_eval.jsonl", source=ARITHMETIC, limit=max_eval_pairs)
                     if spec == ARITHMETIC else load_many([spec], max_eval_pairs))
                 for o, spec in zip(cfg.objectives, cfg.eval_data)}


def evaluate_heads(policy: str | Path, eval_data: Sequence[str] | None, max_eval_pairs: int | None) -> dict:
    """A saved train-mahalo policy's head x objective matrix (`head_matrix`) on held-out pairs given afresh
    (`heldout_of_run`), e.g. more of them than the run held out. Token limits and beta come from the run's record.
    The reference is the starting model: the saved trunk's own output layer when the trunk was frozen (one pass),
    else the starting model loaded again."""
    from preforch.models import load_policy

    cfg, heldout = heldout_of_run(policy, eval_data, max_eval_pairs)
    model, tok = MultiHeadLM.from_pretrained(policy, dtype=torch.float32)
    if cfg.train_trunk:
        start, _ = load_policy(cfg.base_model, dtype=torch.float32, trust_remote_code=cfg.trust_remote_code)
        refs = reference_logprobs(MultiHeadLM.from_base(start, ["reference"], noise_std=0.0), tok, heldout,
                                  starting_head(start), cfg)
    else:  # the frozen trunk's own output layer is the starting head
        refs = starting_head(model.lm)
    return {"policy": str(policy), "heldout_pairs": {o: len(d) for o, d in heldout.items()},
            "heldout_accuracy": head_matrix(model, tok, heldout, refs, cfg, list(model.objectives))}


def route(objectives: Sequence[str], names: Sequence[str]) -> list[int]:
    """Each pair's head index from its objective name; `DataError` naming the pair for an unknown objective."""
    heads = []
    for i, objective in enumerate(objectives):
        if objective not in names:
            raise DataError(f"pair {i}: objective {objective!r} has no head (heads: {list(names)})")
        heads.append(list(names).index(objective))
    return heads


def load_data(cfg: MahaloConfig, lm, tok) -> tuple[dict, dict, dict]:
    """(train, heldout, arithmetic record): per-objective pairs. An 'arithmetic' spec samples the starting policy
    and keeps the pairs in OUTPUT_DIR/data/<objective>_<split>.jsonl, which a resumed run reads back."""
    from preforch.alignment.verifiable_pairs import arithmetic_pairs
    from preforch.data.loaders import load_file, load_many

    splits, record = ({}, {}), {}
    for objective, specs in zip(cfg.objectives, zip(cfg.train_data, cfg.eval_data)):
        for split, (spec, cap, seed) in enumerate(zip(specs, (cfg.max_train_pairs, cfg.max_eval_pairs),
                                                       (cfg.seed, cfg.seed + 10_000))):
            file = Path(cfg.output_dir) / "data" / f"{objective}_{('train', 'eval')[split]}.jsonl"
            if spec == ARITHMETIC and cfg.resume and file.is_file():
                pairs = load_file(file, source=ARITHMETIC)
            elif spec == ARITHMETIC:
                pairs, info = arithmetic_pairs(lm, tok, cap or 200, seed, cfg.arithmetic_samples,
                                               cfg.arithmetic_max_new_tokens, cfg.arithmetic_level,
                                               cfg.arithmetic_batch_size)
                record[f"{objective}/{('train', 'eval')[split]}"] = info
                atomic_write_text(file, "".join(json.dumps({"prompt": list(p.prompt), "chosen": p.chosen,
                                                            "rejected": p.rejected}) + "\n" for p in pairs))
            else:
                pairs = load_many([spec], cap)
            if not len(pairs):
                raise DataError(f"{spec}: no pairs for objective {objective!r}")
            splits[split][objective] = pairs
    return splits[0], splits[1], record


def train_step(model: MultiHeadLM, tok, batch: list[tuple[int, int]], train: list[PreferenceDataset],
               refs: list[tuple[torch.Tensor, torch.Tensor]], heads: list[int], cfg: MahaloConfig, names):
    """DPO loss (plus cfg.sft_coefficient x the chosen reply's NLL, on pairs of cfg.sft_objectives or all) of one
    batch of (objective, pair), each pair's logits from its own head only."""
    pairs = [train[k][i] for k, i in batch]
    replies = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    enc = {k: v.to(model.device) for k, v in encode_replies(tok, [p.prompt for p in pairs] * 2, replies,
                                                            cfg.max_prompt_tokens, cfg.max_reply_tokens).items()}
    hidden, _ = model.hidden(enc["input_ids"], enc["attention_mask"])
    objective = torch.tensor([k for k, _ in batch] * 2)
    logps = torch.zeros(len(replies), device=model.device)
    for k in objective.unique().tolist():
        rows = (objective == k).nonzero()[:, 0].to(model.device)
        logps = logps.index_put((rows,), sequence_logprobs(model.head_logits(hidden[rows], heads[k]),
                                                           enc["input_ids"][rows], enc["reply_mask"][rows]))
    ref = torch.tensor([[refs[k][0][i], refs[k][1][i]] for k, i in batch], device=model.device)
    losses, margins = dpo_losses(logps[:len(pairs)], logps[len(pairs):], ref[:, 0], ref[:, 1], cfg.beta)
    if cfg.sft_coefficient:
        nll_objectives = cfg.sft_objectives or names
        coefficient = torch.tensor([cfg.sft_coefficient * (names[k] in nll_objectives) for k, _ in batch],
                                   device=model.device)
        losses = with_chosen_nll(losses, logps[:len(pairs)], enc["reply_mask"][:len(pairs), 1:].sum(-1), coefficient)
    return per_objective_loss(losses, margins, objective[:len(pairs)].to(model.device), names)


def param_groups(model: MultiHeadLM, cfg: MahaloConfig) -> list[dict]:
    """The optimiser's groups: the trainable trunk at learning_rate (none with cfg.train_trunk false), the heads (and
    their adapters) at head_learning_rate."""
    heads = model.head_parameters()
    trunk = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in heads)]
    groups = [{"params": trunk, "lr": cfg.learning_rate}] if trunk else []
    return groups + [{"params": heads, "lr": cfg.head_learning_rate or cfg.learning_rate}]


def training_summary(cfg: MahaloConfig, steps: int, pairs: dict[str, int], heldout_pairs: dict[str, int]) -> str:
    """How a train-mahalo policy was trained, for its model card."""
    trunk = ("frozen, only the heads learned" if not cfg.train_trunk else
             f"LoRA (r {cfg.lora_r}, alpha {cfg.lora_alpha}) merged" if cfg.use_lora else "fully fine-tuned")
    heads = ("one head trained on every objective's pairs pooled (the baseline)" if cfg.pool else
             "one output head per objective, each objective's pairs training its own head only")
    extras = "".join(f", {e}" for e in (
        f"heads' learning rate {cfg.head_learning_rate}" if cfg.head_learning_rate else "",
        f"a bottleneck adapter of rank {cfg.head_adapter_rank} per head" if cfg.head_adapter_rank else "",
        f"chosen-reply NLL coefficient {cfg.sft_coefficient}" if cfg.sft_coefficient else "") if e)
    train = "; ".join(f"{o} from {spec} ({pairs[o]} pairs)" for o, spec in zip(cfg.objectives, cfg.train_data))
    held = "; ".join(f"{o} from {spec} ({heldout_pairs[o]} pairs)" for o, spec in zip(cfg.objectives, cfg.eval_data))
    return (f"MAHALO: DPO (beta {cfg.beta}) with {heads}, against the starting model {cfg.base_model}; every head "
            f"starts as that model's output matrix plus noise (std {cfg.noise_std}); trunk {trunk}. {steps} steps of "
            f"{cfg.batch_size} pairs split across the objectives, learning rate {cfg.learning_rate}{extras}, seed "
            f"{cfg.seed}. Training data: {train}. Held out: each head's implicit-reward accuracy beta * (log pi_head - "
            f"log pi_start) on each objective's pairs ({held}); the whole head x objective matrix is in {RUN_FILE} "
            "beside this folder.")


def train_mahalo(cfg: MahaloConfig) -> dict:
    """Train, checkpoint every save_steps (resumable), save OUTPUT_DIR/policy and the head x objective matrix. Dropout
    is off while training (as MAHALO's DPO and train-rm have it): the reference log-probs come from eval mode, and
    a policy with dropout on would differ from its reference by noise before any step."""
    from trl.trainer.utils import disable_dropout_in_model

    from preforch.alignment.trl_utils import lora_config
    from preforch.models import load_policy, make_accelerator, start_tracking, stop_tracking

    out, work = Path(cfg.output_dir), Path(cfg.output_dir) / "training"
    torch.manual_seed(cfg.seed)
    lm, tok = load_policy(cfg.base_model, dtype=torch.float32, trust_remote_code=cfg.trust_remote_code)
    train, heldout, record = load_data(cfg, lm, tok)
    head_names = ["pooled"] if cfg.pool else list(cfg.objectives)
    heads = [0] * len(cfg.objectives) if cfg.pool else route(cfg.objectives, head_names)
    model = MultiHeadLM.from_base(lm, head_names, cfg.noise_std, cfg.seed, cfg.head_adapter_rank)
    reference = starting_head(lm)
    refs, heldout_refs = (reference_logprobs(model, tok, split, reference, cfg) for split in (train, heldout))
    if cfg.use_lora:
        from peft import get_peft_model

        model.lm = get_peft_model(lm, lora_config(True, cfg.lora_r, cfg.lora_alpha))
    if not cfg.train_trunk:
        model.lm.requires_grad_(False)
    disable_dropout_in_model(model)  # after peft: its LoRA dropout too
    model.train()
    accelerator = make_accelerator(cfg.report_to, str(work))
    start_tracking(accelerator, "train-mahalo", cfg)
    if accelerator.num_processes > 1:  # train_step calls the trunk and heads directly, past DDP's gradient sync
        raise ConfigError("train-mahalo runs in one process (a GPU or the CPU); drop torchrun / accelerate launch")
    optimizer = torch.optim.AdamW(param_groups(model, cfg), weight_decay=0.0)  # decay would move heads without gradient
    model, optimizer = accelerator.prepare(model, optimizer)
    counts = [len(train[o]) for o in cfg.objectives]
    steps = cfg.max_steps or epoch_steps(counts, cfg.batch_size, cfg.epochs)
    batches = balanced_batches(counts, cfg.batch_size, steps, cfg.seed)
    start = 0
    if cfg.resume and (work / "checkpoint" / "state.json").is_file():
        accelerator.load_state(str(work / "checkpoint"))
        start = json.loads((work / "checkpoint" / "state.json").read_text())["step"]
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "log.jsonl"
    kept = [l for l in log_file.read_text().splitlines() if json.loads(l)["step"] <= start] if start and log_file.is_file() else []
    log_file.write_text("".join(l + "\n" for l in kept))
    train_list, ref_list = [train[o] for o in cfg.objectives], [refs[o] for o in cfg.objectives]
    for step in tqdm(range(start, steps), desc="train-mahalo", unit="step", initial=start, total=steps):
        loss, log = train_step(model, tok, batches[step], train_list, ref_list, heads, cfg, cfg.objectives)
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step + 1, "loss": loss.item(), **log}) + "\n")
        accelerator.log({"loss": loss.item(), **log}, step=step + 1)
        if (step + 1) % cfg.save_steps == 0 or step + 1 == steps:  # the last too: --max_steps N extends a run
            with atomic_directory(work / "checkpoint") as tmp:
                accelerator.save_state(str(tmp), safe_serialization=True)
                atomic_write_json(tmp / "state.json", {"step": step + 1})
    stop_tracking(accelerator)
    model = accelerator.unwrap_model(model).eval()
    matrix = head_matrix(model, tok, heldout, heldout_refs, cfg, head_names)
    record = {"steps": steps, "heads": head_names, "pairs": {o: len(d) for o, d in train.items()},
              "heldout_pairs": {o: len(d) for o, d in heldout.items()}, "arithmetic": record,
              "heldout_accuracy": matrix, "config": asdict(cfg)}
    with atomic_directory(out / "policy") as tmp:
        model.save_pretrained(tmp, tok, base_model=cfg.base_model, beta=cfg.beta)
        write_model_card(tmp, "mahalo", cfg.base_model, cfg.train_data, head_names,
                         own_objective_accuracies(matrix, "head"),
                         training_summary(cfg, steps, record["pairs"], record["heldout_pairs"]))
    atomic_write_json(out / RUN_FILE, record)
    return {"policy": str(out / "policy"), **record}
