"""Oracle for weight import: a PyTorch state_dict of a tiny spiking ResNet-19 with two surrogate modules,
written with the torch dtypes (float32 tensors, int64 num_batches_tracked), for tests/io.test.ts.

Width 2 (stages 4, 8, 16 channels) and module width 4 keep the file small; module 0 maps its C = 4 = k
input directly, module 1 first reduces C = 8 > k with the 1x1 conv. The counters are distinct and one
exceeds 2^32, so a reader that mixes them up or drops the high word fails.
"""
from fixture_io import generator, save
from sml_models import SpikingResNet, init_random

model = SpikingResNet("resnet19", 10, 2, width=2, positions=(3, 3), module_width=4)
init_random(model, generator(7))
state = model.state_dict()
counters = [key for key in state if key.endswith("num_batches_tracked")]
for i, key in enumerate(counters):
    state[key].fill_(3 + 7 * i)
state[counters[-1]].fill_(2**33 + 12345)
save("state_dict_resnet19_w2", state)
print(f"state_dict_resnet19_w2: {len(state)} entries, {sum(v.numel() for v in state.values())} values")
