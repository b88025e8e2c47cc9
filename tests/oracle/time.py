"""Oracle for the time-folded layout: expand (B, ...) -> (T*B, ...) with row t*B + b = x[b], and the mean
over t of (T*B, ...) -> (B, ...), each with its gradient under an upstream gradient."""
from fixture_io import generator, randn, save

g = generator(4)
batch, features = 3, (2, 5)
arrays = {}
for steps in [1, 2, 4]:
    x = randn(g, batch, *features).requires_grad_()
    expanded = x.unsqueeze(0).repeat(steps, 1, 1, 1).reshape(steps * batch, *features)
    up = randn(g, steps * batch, *features)
    (expanded * up).sum().backward()
    arrays.update({f"x_expand_{steps}": x, f"up_expand_{steps}": up, f"out_expand_{steps}": expanded,
                   f"grad_expand_{steps}": x.grad})

    folded = randn(g, steps * batch, *features).requires_grad_()
    mean = folded.reshape(steps, batch, *features).mean(0)
    up = randn(g, batch, *features)
    (mean * up).sum().backward()
    arrays.update({f"x_mean_{steps}": folded, f"up_mean_{steps}": up, f"out_mean_{steps}": mean,
                   f"grad_mean_{steps}": folded.grad})
save("time_fold", arrays)
