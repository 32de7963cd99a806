"""Writes torch_model.safetensors and torch_model_io.safetensors: the fixture of
tests/torch_fixture.rs.

A tiny seeded PyTorch model, conv + LSTM + attention + linear:

    x [N=2, C=1, H=6, W=8]
    -> Conv2d(1, 4, 3, padding=1) -> ReLU                 [2, 4, 6, 8]
    -> permute to [N, H, C, W], reshape to [N, H, C*W]    [2, 6, 32]  (H is time)
    -> LSTM(32, 8, batch_first=True), outputs             [2, 6, 8]
    -> MultiheadAttention(8, 2 heads, batch_first=True), self-attention, no mask
    -> Linear(8, 3)                                       [2, 6, 3]

in evaluation mode. torch_model.safetensors is the model's `state_dict` as
`safetensors.torch.save_file` writes it (PyTorch's names and [out, in] layouts, float32);
torch_model_io.safetensors holds the fixed input `x` and PyTorch's output `y` (float32).

Run from this directory (needs torch, safetensors, numpy): python make_torch_model_fixture.py
"""

import torch
from torch import nn
from safetensors.torch import save_file


class ConvLstmAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lstm = nn.LSTM(32, 8, batch_first=True)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        n, _, h, _ = x.shape
        f = torch.relu(self.conv(x))
        seq = f.permute(0, 2, 1, 3).reshape(n, h, -1)
        out, _ = self.lstm(seq)
        att, _ = self.attn(out, out, out, need_weights=False)
        return self.head(att)


torch.manual_seed(16)
model = ConvLstmAttention().eval()
# Non-zero biases everywhere (PyTorch initializes the attention biases to zero), so that a
# bias mapped to the wrong place shows.
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.copy_(torch.randn_like(p) * 0.2)
x = torch.randn(2, 1, 6, 8)
with torch.no_grad():
    y = model(x)

state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
save_file(state, "torch_model.safetensors", metadata={"format": "pt"})
save_file({"x": x.contiguous(), "y": y.contiguous()}, "torch_model_io.safetensors")
print(f"torch {torch.__version__}: y {tuple(y.shape)}, |y|max {y.abs().max().item():.4f}")
for k, v in state.items():
    print(f"  {k} {tuple(v.shape)}")
