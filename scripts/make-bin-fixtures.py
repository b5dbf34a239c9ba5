#!/usr/bin/python3
"""Writes the torch.save fixtures of test/fixtures/torch-bin (run with Debian's python3-torch: /usr/bin/python3).

  tiny-t5/            config.json + pytorch_model.bin: a 2-layer T5 (d_model 4, vocab 12, gated-gelu, untied)
                      whose tensors hold k/64 - 0.5 for k = 0, 1, ... in state-dict order (float32), with
                      encoder/decoder.embed_tokens sharing shared.weight's storage, as transformers saves it
  tiny-t5-bf16.bin    the same state dict in bfloat16; tiny-t5-fp16.bin in float16
  views.bin           a transposed (non-contiguous) tensor, a slice at a storage offset, an int64 and a bool tensor
  wrapped.bin         {"state_dict": {...}, "epoch": 3} (the Lightning-style wrapper)
  legacy.bin          the pre-1.6 (non-zip) format
  evil-os-system.bin  a torch.save archive whose pickle calls os.system (a __reduce__), to be refused
  adapter/            adapter_config.json + adapter_model.bin: a rank-2 PEFT LoRA on encoder q (older PEFT's format)
  values.json         the expected values (float32 state dict, views.bin, adapter)
Nothing here needs python at test time: the files are committed.
"""
import collections
import json
import os
import sys

import torch

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "torch-bin")
os.makedirs(os.path.join(out, "tiny-t5"), exist_ok=True)

cfg = dict(
    architectures=["T5ForConditionalGeneration"], model_type="t5", vocab_size=12, d_model=4, d_kv=2, d_ff=6,
    num_heads=2, num_layers=1, num_decoder_layers=1, relative_attention_num_buckets=4,
    relative_attention_max_distance=8, dropout_rate=0.0, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
    tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

V, D, I, F, H, B = 12, 4, 4, 6, 2, 4
shapes = [("shared.weight", (V, D))]
def block(stack, dec):
    p = f"{stack}.block.0.layer."
    s = []
    for n in "qkvo":
        s.append((f"{p}0.SelfAttention.{n}.weight", (I, D) if n != "o" else (D, I)))
    s.append((f"{p}0.SelfAttention.relative_attention_bias.weight", (B, H)))
    s.append((f"{p}0.layer_norm.weight", (D,)))
    ff = 1
    if dec:
        for n in "qkvo":
            s.append((f"{p}1.EncDecAttention.{n}.weight", (I, D) if n != "o" else (D, I)))
        s.append((f"{p}1.layer_norm.weight", (D,)))
        ff = 2
    s += [(f"{p}{ff}.DenseReluDense.wi_0.weight", (F, D)), (f"{p}{ff}.DenseReluDense.wi_1.weight", (F, D)),
          (f"{p}{ff}.DenseReluDense.wo.weight", (D, F)), (f"{p}{ff}.layer_norm.weight", (D,))]
    s.append((f"{stack}.final_layer_norm.weight", (D,)))
    return s
shapes += block("encoder", False) + block("decoder", True) + [("lm_head.weight", (V, D))]

k = 0
sd = collections.OrderedDict()
values = {}
for name, shape in shapes:
    n = 1
    for d in shape:
        n *= d
    t = (torch.arange(k, k + n, dtype=torch.float32) / 64.0 - 0.5).reshape(shape)
    k += n
    sd[name] = t
    values[name] = {"shape": list(shape), "values": t.flatten().tolist()}
    if name == "shared.weight":
        sd["encoder.embed_tokens.weight"] = t  # same storage, as HF's tied embeddings
        sd["decoder.embed_tokens.weight"] = t
sd._metadata = collections.OrderedDict([("", {"version": 1})])  # what nn.Module.state_dict() attaches

torch.save(sd, os.path.join(out, "tiny-t5", "pytorch_model.bin"))
with open(os.path.join(out, "tiny-t5", "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
for dt, fn in ((torch.bfloat16, "tiny-t5-bf16.bin"), (torch.float16, "tiny-t5-fp16.bin")):
    sd2 = collections.OrderedDict()
    for name, t in sd.items():
        sd2[name] = t.to(dt) if name not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") else None
    shared = sd2["shared.weight"]
    sd2["encoder.embed_tokens.weight"] = shared
    sd2["decoder.embed_tokens.weight"] = shared
    torch.save(sd2, os.path.join(out, fn))

base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
views = collections.OrderedDict()
views["transposed"] = base.t()                      # [6, 4], strides (1, 6)
views["slice"] = base.flatten()[5:11].reshape(2, 3)  # offset 5
views["ids"] = torch.tensor([-(2 ** 62), 7, 0], dtype=torch.int64)
views["mask"] = torch.tensor([True, False, True])
views["param"] = torch.nn.Parameter(torch.tensor([0.25, -1.5]))
torch.save(views, os.path.join(out, "views.bin"))
values["views"] = {
    "transposed": base.t().contiguous().flatten().tolist(),
    "slice": base.flatten()[5:11].tolist(),
}

torch.save({"state_dict": collections.OrderedDict([("w", torch.tensor([1.0, 2.0]))]), "epoch": 3},
           os.path.join(out, "wrapped.bin"))
torch.save(collections.OrderedDict([("w", torch.tensor([1.0, 2.0]))]), os.path.join(out, "legacy.bin"),
           _use_new_zipfile_serialization=False)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/instill-torch-bin-pwned",))


torch.save({"w": torch.tensor([1.0]), "x": Evil()}, os.path.join(out, "evil-os-system.bin"))

os.makedirs(os.path.join(out, "adapter"), exist_ok=True)
ad = collections.OrderedDict()
q = "base_model.model.encoder.block.0.layer.0.SelfAttention.q"
ad[q + ".lora_A.weight"] = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8.0
ad[q + ".lora_B.weight"] = -torch.arange(8, dtype=torch.float32).reshape(4, 2) / 16.0
torch.save(ad, os.path.join(out, "adapter", "adapter_model.bin"))
with open(os.path.join(out, "adapter", "adapter_config.json"), "w") as f:
    json.dump({"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q"],
               "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": "tiny-t5"}, f, indent=2)
values["adapter"] = {k: t.flatten().tolist() for k, t in ad.items()}

with open(os.path.join(out, "values.json"), "w") as f:
    json.dump(values, f)
print("torch", torch.__version__, "wrote", sorted(os.listdir(out)), file=sys.stderr)
