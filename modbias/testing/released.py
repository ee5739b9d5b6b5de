"""Tiny random checkpoints in the released on-disk layouts of Emotion-LLaMA and R1-Omni.

Called through :func:`modbias.testing.make_tiny_checkpoint` (``"emotion_llama"``,
``"r1_omni"``).  File names, key names, container formats and the ways the
originals save them are the released ones (see
``shared/reference/released-checkpoints.md``); only the widths, depths and
vocabularies are small.  Token counts are the real ones: 256 + 4 Emotion-LLaMA
feature tokens (EVA patch 2 at 64 px keeps the 32x32 grid), 392 R1-Omni
visual tokens (8 frames of SigLIP 224/16) and 500 audio tokens (Whisper's 30 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from modbias.testing import QWEN_CHAT_TEMPLATE, TINY_TEXT, _boost_emotions, tiny_llama_tokenizer, tiny_qwen_tokenizer

EMOTION_LLAMA_CHECKPOINT = "Emoation_LLaMA.pth"  # the released file name (sic)
TINY_EVA = dict(patch=2, width=176, depth=2, mlp_hidden=768, file_grid=16)  # 176 = 2 heads of 88
TINY_FEATURE_DIM = 16
LORA_RANK = 64
R1_OMNI_TOWERS = {"vision": "siglip-base-patch16-224", "audio": "whisper-large-v3", "bert": "bert-base-uncased"}
AUTHORS_ROOT = "/mnt/data/jiaxing.zjx/models"  # config.json names the towers by its authors' absolute paths


# -- Emotion-LLaMA -----------------------------------------------------------------------------
def tiny_emotion_llama(path: Path, peft_default: bool = False, **_) -> None:
    """``Llama-2-7b-chat-hf/`` (HF LLaMA + tokenizer), ``eva_vit_g.pth`` (LAVIS keys, 16x16 + 1 positions)
    and ``Emoation_LLaMA.pth`` (``torch.save`` of model/optimizer/config/scaler/epoch).

    Args:
        path: the folder to write.
        peft_default: LoRA keys with newer peft's ``.default`` segment.
        **_: options of other families (ignored).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from modbias.models.eva_vit import EvaViT

    tok = tiny_llama_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), pad_token_id=0, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=False, **TINY_TEXT)
    llama = LlamaForCausalLM(config).eval()
    _boost_emotions(llama.lm_head, tok)
    llama.save_pretrained(path / "Llama-2-7b-chat-hf")
    tok.save_pretrained(path / "Llama-2-7b-chat-hf")

    eva_spec = dict(TINY_EVA)
    grid = eva_spec.pop("file_grid")
    eva = EvaViT(image_size=grid * eva_spec["patch"], heads=eva_spec["width"] // 88, **eva_spec)
    with torch.no_grad():
        for name, param in eva.named_parameters():
            param.normal_(0.0, 0.02 if param.ndim > 1 else 0.1)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight"):
                param.add_(1.0)
    torch.save(eva.state_dict(), path / "eva_vit_g.pth")

    d, width, f = config.hidden_size, eva_spec["width"], TINY_FEATURE_DIM
    shapes = {"llama_proj": (d, 4 * width), "cls_tk_llama_proj": (d, width),
              **{f"feats_llama_proj{i}": (d, f) for i in (1, 2, 3)}}
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = torch.randn(shape) / shape[1] ** 0.5
        state[f"{name}.bias"] = 0.01 * torch.randn(shape[0])
    segment = ".default" if peft_default else ""
    outputs = {"q_proj": config.num_attention_heads, "v_proj": config.num_key_value_heads}
    head_dim = d // config.num_attention_heads
    for i in range(config.num_hidden_layers):
        for target, heads in outputs.items():
            stem = f"llama_model.base_model.model.model.layers.{i}.self_attn.{target}"
            state[f"{stem}.lora_A{segment}.weight"] = torch.randn(LORA_RANK, d) / d ** 0.5
            state[f"{stem}.lora_B{segment}.weight"] = 0.05 * torch.randn(heads * head_dim, LORA_RANK)
    state["attention.fc_att.weight"] = torch.randn(7, 8)  # the auxiliary classifier, unused at inference
    state["attention.fc_att.bias"] = torch.zeros(7)
    run_config = {"model": {"arch": "minigpt_v2", "model_type": "pretrain", "lora_r": LORA_RANK, "lora_alpha": 16,
                            "image_size": 448, "prompt_template": "[INST] {} [/INST]", "end_sym": "</s>"},
                  "run": {"task": "image_text_pretrain", "max_epoch": 30, "init_lr": 1e-5}}
    optimizer = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-5, "weight_decay": 0.05, "params": list(range(len(state)))}]}
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
              "_growth_tracker": 0}
    torch.save({"model": state, "optimizer": optimizer, "config": run_config, "scaler": scaler, "epoch": 29},
               path / EMOTION_LLAMA_CHECKPOINT)


# -- R1-Omni / HumanOmni -----------------------------------------------------------------------
def _tiny_towers(path: Path) -> dict:
    """SigLIP (full SiglipModel folder), Whisper (WhisperForConditionalGeneration) and BERT folders."""
    from transformers import (BertConfig, BertModel, BertTokenizer, SiglipConfig, SiglipModel, WhisperConfig,
                              WhisperFeatureExtractor, WhisperForConditionalGeneration)

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=224,
                  patch_size=16)
    siglip = SiglipModel(SiglipConfig(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                       num_attention_heads=2, vocab_size=64, pad_token_id=1,
                                                       bos_token_id=0, eos_token_id=2),
                                      vision_config=vision)).eval()
    siglip.save_pretrained(path / R1_OMNI_TOWERS["vision"])
    (path / R1_OMNI_TOWERS["vision"] / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "processor_class": "SiglipProcessor", "do_resize": True,
        "size": {"height": 224, "width": 224}, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": None},
        indent=1))
    whisper = WhisperForConditionalGeneration(WhisperConfig(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=128, max_source_positions=1500, vocab_size=128,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)).eval()
    whisper.save_pretrained(path / R1_OMNI_TOWERS["audio"])
    WhisperFeatureExtractor(feature_size=128).save_pretrained(path / R1_OMNI_TOWERS["audio"])
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"as an emotional recognition expert ; throughout the video "
             ", which emotion conveyed by characters is most obvious to you ? output thinking process in < think > "
             "and final answer tags .".split()]
    bert_tok = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(words))})
    bert_cfg = BertConfig(vocab_size=len(bert_tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=128)
    BertModel(bert_cfg).eval().save_pretrained(path / R1_OMNI_TOWERS["bert"])
    bert_tok.save_pretrained(path / R1_OMNI_TOWERS["bert"])
    return {"vision_hidden": vision["hidden_size"], "audio_hidden": 32, "bert": bert_cfg}


def tiny_r1_omni(path: Path, **_) -> None:
    """The released R1-Omni folder (``config.json`` ``HumanOmni_qwen2``, ``model.safetensors`` with
    ``model.*`` Qwen2 keys, ``model.mm_projector.*``, ``model.audio_projector.*``, ``model.bert_gate.*``,
    ``model.bert_model.*``; tokenizer with chat template) and the tower folders inside it.

    Args:
        path: the folder to write.
        **_: options of other families (ignored).
    """
    from safetensors.torch import save_file
    from transformers import BertModel, Qwen2Config, Qwen2ForCausalLM

    from modbias.models.humanomni_parts import AllInOneSmall, mlp2x_gelu

    towers = _tiny_towers(path)
    tok = tiny_qwen_tokenizer()  # <vi_start>, <au_start>, <think>, <answer> ... are plain text, as in R1-Omni's
    tok.chat_template = QWEN_CHAT_TEMPLATE
    text = dict(TINY_TEXT, vocab_size=len(tok), tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
                bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tok.eos_token_id)
    llm = Qwen2ForCausalLM(Qwen2Config(**text)).eval()
    _boost_emotions(llm.lm_head, tok)
    d = text["hidden_size"]
    projector = AllInOneSmall(towers["vision_hidden"], d, depth=2)
    with torch.no_grad():  # LayerNorm weights away from 1, so that a wrong key shows
        for name, param in projector.named_parameters():
            if name.endswith("bn.weight"):
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
    audio_projector = mlp2x_gelu(towers["audio_hidden"], d)
    gate = torch.nn.Sequential(torch.nn.Linear(towers["bert"].hidden_size, 48), torch.nn.GELU(),
                               torch.nn.Linear(48, 3))
    trained_bert = BertModel(towers["bert"]).eval()  # the checkpoint's BERT differs from the folder's
    state = {k: v for k, v in llm.state_dict().items() if k != "lm_head.weight"}  # tied, as released
    for prefix, module in (("model.mm_projector.", projector), ("model.audio_projector.", audio_projector),
                           ("model.bert_gate.", gate), ("model.bert_model.", trained_bert)):
        state.update({prefix + k: v for k, v in module.state_dict().items()})
    save_file({k: v.contiguous().clone() for k, v in state.items()}, path / "model.safetensors",
              metadata={"format": "pt"})
    config = {**{k: v for k, v in Qwen2Config(**text).to_dict().items() if k not in ("model_type", "architectures")},
              "architectures": ["HumanOmniQwen2ForCausalLM"], "model_type": "HumanOmni_qwen2",
              "mm_hidden_size": towers["vision_hidden"], "mm_projector_type": "all_in_one_small",
              "mm_audio_projector_type": "mlp2x_gelu", "audio_hidden_size": towers["audio_hidden"],
              "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "num_frames": 8,
              "mm_use_x_start_end": True, "torch_dtype": "float32",
              "mm_vision_tower": f"{AUTHORS_ROOT}/{R1_OMNI_TOWERS['vision']}",
              "mm_audio_tower": f"{AUTHORS_ROOT}/{R1_OMNI_TOWERS['audio']}"}
    (path / "config.json").write_text(json.dumps(config, indent=1))
    tok.save_pretrained(path)
