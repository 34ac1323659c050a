"""Tiny random models of many Hugging Face families, built in-process and saved to disk.

Each model is what a user brings: ``AutoConfig.for_model(type)`` with tiny sizes, random
weights, ``save_pretrained`` next to a tokenizer trained here (byte-level BPE, no hub). Two
layers and hidden size 32 keep a forward pass in milliseconds while running the family's own
modeling code: its attention, norms, rotary or relative positions, experts or state space.
"""

from __future__ import annotations

from pathlib import Path

HIDDEN = 32
LAYERS = 2
VOCAB = 320
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
PAD, BOS, EOS, UNK, CLS, SEP, MASK = range(len(SPECIALS))

COMMON = dict(
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    intermediate_size=64,
    vocab_size=VOCAB,
    max_position_embeddings=128,
    pad_token_id=PAD,
    bos_token_id=BOS,
    eos_token_id=EOS,
)
GQA = dict(num_key_value_heads=2)
ROTARY_HEAD = dict(num_key_value_heads=2, head_dim=8)

DECODERS = {
    "gpt2": {},
    "llama": GQA,
    "qwen2": GQA,
    "qwen3": ROTARY_HEAD,
    "mistral": GQA,
    "gemma": ROTARY_HEAD,
    "gemma2": ROTARY_HEAD,
    "gemma3_text": {**ROTARY_HEAD, "sliding_window": 16},
    "phi": {},
    "phi3": {},
    "gpt_neox": {},
    "opt": {"word_embed_proj_dim": HIDDEN},
    "falcon": {},
    "bloom": {},
    "gptj": {"rotary_dim": 4},
    "stablelm": {"num_key_value_heads": 4},
    "olmo2": GQA,
    "granite": GQA,
    "mixtral": {**GQA, "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen3_moe": {
        **ROTARY_HEAD,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
    },
    "mamba": {"state_size": 8, "expand": 2, "conv_kernel": 4},
}
ENCODERS = {
    "bert": {},
    "roberta": {},
    "distilbert": {},
    "albert": {"embedding_size": 16},
    "electra": {"embedding_size": 16},
    "deberta-v2": {},
    "xlm-roberta": {},
    "modernbert": {
        "global_attn_every_n_layers": 1,
        "local_attention": 16,
        "cls_token_id": CLS,
        "sep_token_id": SEP,
    },
}
ENCODER_DECODERS = {
    "t5": dict(
        d_model=HIDDEN,
        d_kv=8,
        d_ff=64,
        num_layers=LAYERS,
        num_heads=4,
        num_decoder_layers=LAYERS,
        decoder_start_token_id=PAD,
    ),
    "bart": dict(
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        decoder_start_token_id=EOS,
    ),
}
MODEL_TYPES = [*DECODERS, *ENCODERS, *ENCODER_DECODERS]


def train_tokenizer(corpus: list[str], folder: Path, encoder: bool) -> Path:
    """A byte-level BPE tokenizer (no unknown characters), saved with ``save_pretrained``.

    Encoders wrap a text in [CLS] ... [SEP], decoders prefix <s>: as their real tokenizers do,
    so the special-token paths of tokenization and pooling run too.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    if encoder:
        template = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)]
        )
    else:
        template = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    bpe.post_processor = template
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant:{% endif %}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_model(model_type: str, folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Save a random tiny ``model_type`` into ``folder`` with the tokenizer beside it."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    extra = {**DECODERS, **ENCODERS, **ENCODER_DECODERS}[model_type]
    config = AutoConfig.for_model(model_type, **{**COMMON, **extra})
    torch.manual_seed(seed)
    if model_type in ENCODER_DECODERS:
        model = AutoModelForSeq2SeqLM.from_config(config)
    elif model_type in DECODERS:
        model = AutoModelForCausalLM.from_config(config)
    else:
        model = AutoModel.from_config(config)
    for parameter in model.parameters():  # a little larger than init: layers must differ
        parameter.data.add_(torch.randn_like(parameter) * 0.02)
    model.eval().save_pretrained(folder)
    for path in tokenizer_dir.iterdir():
        shutil.copy(path, folder / path.name)
    return folder
