"""Oracle for the SML losses (SPEC §6): F.cross_entropy, the temperature KL written from the spec with the
target detached, and the combined SML loss of an SNN with three surrogate modules."""
import torch
import torch.nn.functional as F

from fixture_io import generator, randn, save


def kl_d(a, b, tau):
    """KLd(a, b) = (1/B) sum_b sum_k p_k (log p_k - log softmax(a/tau)_k), p = softmax(stopgrad(b)/tau)."""
    target = b.detach()
    log_p = F.log_softmax(target / tau, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(a / tau, dim=1))).sum() / a.shape[0]


g = generator(5)

# Cross-entropy: K = 10 and K = 1000 with small batches; "large" logits overflow exp without max subtraction.
for label, (batch, classes, scale) in {"k10": (4, 10, 1.0), "k1000": (3, 1000, 2.0), "large": (5, 10, 50.0)}.items():
    logits = randn(g, batch, classes, scale=scale).requires_grad_()
    labels = torch.randint(0, classes, (batch,), generator=g)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    save(f"loss_ce_{label}", {"logits": logits, "labels": labels.int(), "loss": loss, "grad_logits": logits.grad})

# KL at temperatures 3 and 1; the teacher requires grad but must receive none.
for label, (batch, classes, tau, scale) in {"t3": (5, 10, 3.0, 2.0), "t1": (4, 10, 1.0, 2.0),
                                            "k1000": (2, 1000, 3.0, 60.0)}.items():
    student = randn(g, batch, classes, scale=scale).requires_grad_()
    teacher = randn(g, batch, classes, scale=scale).requires_grad_()
    loss = kl_d(student, teacher, tau)
    loss.backward()
    assert teacher.grad is None
    save(f"loss_kl_{label}", {"student": student, "teacher": teacher, "loss": loss,
                              "grad_student": student.grad, "temperature": torch.tensor(tau)})

# The SML loss with N = 3 modules (CIFAR settings): ten terms, so the weighted sum spans two dispatches.
batch, classes, modules = 4, 10, 3
tau, alpha, lam = 3.0, 0.5, 0.9
logits = [randn(g, batch, classes, scale=2.0).requires_grad_() for _ in range(modules + 1)]
labels = torch.randint(0, classes, (batch,), generator=g)
hard = (F.cross_entropy(logits[0], labels) + alpha * sum(F.cross_entropy(y, labels) for y in logits[1:])) \
    / (modules * alpha + 1)
soft = sum(kl_d(y, logits[0], tau) + kl_d(logits[0], y, tau) for y in logits[1:]) / (2 * modules + 1e-8)
loss = lam * soft + (1 - lam) * hard
loss.backward()
arrays = {"labels": labels.int(), "loss": loss}
for i, y in enumerate(logits):
    arrays.update({f"y{i}": y, f"grad_y{i}": y.grad})
save("loss_sml", arrays)
