"""Stage 2, ``pretrain-lm``: the BCN language model trained as a cloze task on clean corpus
words, validated on disturbed held-out words (exact and top-5 correction)."""

from __future__ import annotations

import numpy as np
import torch

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.text.corpus import TextCorpusDataset, read_corpus_words, zipf_occurrences
from semimtr_cli.data.text.noise import disturb_word, spelling_mutation
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.train import losses
from semimtr_cli.train.distributed import gather, gather_output
from semimtr_cli.train.stage_base import Stage
from semimtr_cli.train.wrappers import eval_mode, unwrap


class PretrainLanguage(Stage):
    """BCN pre-training on clean words (cloze task through the diagonal mask).

    Validation feeds a disturbed copy of held-out words (one random edit, the official eval
    set's rule) and reports exact and top-5 accuracy.
    """

    name = "pretrain-lm"
    model_kind = "language"
    heads = ("language",)
    select_key = "exact"

    def apply_init(self, model):
        if self.recipe.init.language:
            self._init_from(model, self.recipe.init.language, "language")

    def _load_words(self) -> tuple[list[str], list[str]]:
        d = self.recipe.data
        if not d.corpus:
            raise SemimtrError("pretrain-lm: data.corpus is not set; give a word list / text / CSV file")
        words = read_corpus_words(d.corpus, fmt=d.corpus_format, column=d.corpus_column)
        if d.corpus_weighting == "zipf":
            words = zipf_occurrences(words, d.corpus_size)
        if d.valid_corpus:
            return words, read_corpus_words(d.valid_corpus, fmt=d.corpus_format, column=d.corpus_column)
        rng = np.random.default_rng(self.recipe.train.seed)
        n_valid = min(d.valid_split, len(words) // 10)
        order = rng.permutation(len(words))
        held = set(order[:n_valid].tolist())
        return [w for i, w in enumerate(words) if i not in held], [words[i] for i in sorted(held)]

    def check_data(self):
        train_words, held_out = self._load_words()
        noise = spelling_mutation if self.recipe.language.spelling_mutation else None
        self._train = TextCorpusDataset(train_words, self.charset, source=self.recipe.data.corpus, noise=noise,
                                        seed=self.recipe.train.seed)
        self._valid_sets = {"": self._encodable(held_out)}
        n_sample = self.recipe.data.valid_sample
        if n_sample:  # distinct training words, uniformly: the rare ones count as much as the frequent
            vocab = self._train.distinct_words()
            rng = np.random.default_rng(self.recipe.train.seed + 7)
            picks = rng.choice(len(vocab), size=min(n_sample, len(vocab)), replace=False)
            self._valid_sets["_vocab"] = [vocab[int(i)] for i in sorted(picks)]
        self.ctx.log(f"corpus: {self._train.stats.kept} training words ({self._train.stats.skipped or 'none'} skipped), "
                     f"{len(self._valid_sets[''])} held-out validation words"
                     + (f", {len(self._valid_sets['_vocab'])} distinct training words (exact_vocab)" if n_sample else ""))

    def _encodable(self, words: list[str]) -> list[str]:
        if not words:
            return []
        valid = TextCorpusDataset(words, self.charset, source="validation words")
        return [valid.word(i) for i in range(len(valid))]

    def train_dataset(self):
        return self.mix([self._train])

    def _one_hot(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(ids, self.charset.num_classes).float()

    def loss(self, model, batch):
        dev, dist = self.ctx.device, self.ctx.dist
        out = model(self._one_hot(batch["input"].to(dev)), batch["input_length"].to(dev))
        out = gather_output(out, dist)
        target, lengths = gather(batch["label"].to(dev), dist), gather(batch["length"].to(dev), dist)
        ce = losses.sequence_ce(out.logits, target, lengths, label_smoothing=self.recipe.language.label_smoothing)
        return ce, {"ce": ce.detach()}

    @torch.no_grad()
    def validate(self, model, autocast):
        """exact / top5 (percent) on each validation set of disturbed words (suffix per set)."""
        out: dict[str, float] = {}
        with eval_mode(unwrap(model)) as model:
            for suffix, words in self._valid_sets.items():
                if words:
                    exact, top5 = self._spelling(model, autocast, words)
                    out[f"exact{suffix}"], out[f"top5{suffix}"] = exact, top5
        return out

    def _spelling(self, model, autocast, words: list[str]) -> tuple[float, float]:
        """Exact and top-5 correction of ``words`` after one random edit each (official eval rule)."""
        rng = np.random.default_rng(12345)
        # an inserted letter can push a max-length word one past the limit: cut it back
        noisy = [disturb_word(w, rng)[: self.charset.max_length] for w in words]
        exact = top5 = 0
        bs = 512
        for start in range(0, len(noisy), bs):
            clean = words[start:start + bs]
            inp = [self.charset.encode_padded(w) for w in noisy[start:start + bs]]
            ids = torch.tensor([p for p, _ in inp], device=self.ctx.device)
            lengths = torch.tensor([n for _, n in inp], device=self.ctx.device)
            with autocast():
                out = model(self._one_hot(ids), lengths)
            logits = out.logits.float()
            top = logits.topk(5, dim=-1).indices
            for row, gt, dec in zip(top, clean, decode_logits(logits, self.charset)):
                exact += dec.text == gt
                gt_ids, gt_len = self.charset.encode_padded(gt)
                gt_t = torch.tensor(gt_ids[:gt_len], device=row.device)
                slots_ok = bool((row[:gt_len] == gt_t.unsqueeze(-1)).any(-1).all())
                top5 += slots_ok and dec.length == gt_len
        n = len(noisy)
        return 100.0 * exact / n, 100.0 * top5 / n
