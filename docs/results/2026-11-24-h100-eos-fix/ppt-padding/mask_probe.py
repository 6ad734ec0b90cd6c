"""Does left padding (an explicit attention mask) slow training steps? Speeder's PPT rows are
shorter than its recommendation rows, so a mixed batch is padded; a batch of rec rows is not."""
import sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
shape = sys.argv[1]
cfg = dict(smol=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3),
           l7b=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32))[shape]
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = LlamaForCausalLM(LlamaConfig(vocab_size=49152, max_position_embeddings=2048, attn_implementation="sdpa", **cfg))
for p in model.parameters(): p.requires_grad_(False)
dec = model.model
H = cfg["hidden_size"]
def step(rows, length, pad_rows=0, pad=0):
    x = torch.randn(rows, length, H, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    mask = torch.ones(rows, length, device="cuda", dtype=torch.long)
    if pad_rows: mask[-pad_rows:, :pad] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    h = dec(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state[:, -1]
    h.float().pow(2).mean().backward()
def timed(fn, n=5):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / n * 1000
B = 64 if shape == "l7b" else 128
P = int(B * 0.3)
print(shape, "batch", B, "ppt rows", P)
print("rec only, no padding            %.1f ms" % timed(lambda: step(B, 122)))
print("rec + ppt one pass, all 122     %.1f ms" % timed(lambda: step(B + P, 122)))
print("rec + ppt one pass, ppt padded  %.1f ms" % timed(lambda: step(B + P, 122, P, 15)))
print("rec pass + ppt pass (107)       %.1f ms" % timed(lambda: (step(B, 122), step(P, 107))))
