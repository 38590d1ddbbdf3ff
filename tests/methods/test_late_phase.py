"""Late-phase SAM: base-optimizer steps before ``start_epoch``, SAM after."""

from mmengine.logging import MessageHub

from tests.core.toy import ToyDataset, batch

from .hand import assert_weights, grad, sam_grads, sgd, toy, weights, wrapper

RHO = 0.5


def test_plain_steps_before_the_start_epoch_sam_from_it():
    ds = ToyDataset(48, seed=3)
    data = [batch(ds, range(16 * i, 16 * i + 16)) for i in range(3)]
    model = toy()
    ow = wrapper(model, 'LatePhaseSAMOptimWrapper', rho=RHO, start_epoch=2)
    hub = MessageHub.get_instance('test_late_phase')
    w, fracs = weights(model), []
    for epoch, d in zip([0, 1, 2], data):
        hub.update_info('epoch', epoch)
        fracs.append(float(model.train_step(d, ow)['sam_frac']))
        g = sam_grads(model, d, w, RHO)[1] if epoch >= 2 else grad(model, d, w)
        w = sgd(w, g)
    assert fracs == [0.0, 0.0, 1.0]
    assert_weights(model, w)


def test_start_epoch_zero_is_sam():
    ds = ToyDataset(16)
    a, b = toy(), toy()
    MessageHub.get_instance('test_late_phase_zero').update_info('epoch', 0)
    a.train_step(
        batch(ds, range(16)),
        wrapper(a, 'LatePhaseSAMOptimWrapper', rho=RHO, start_epoch=0),
    )
    b.train_step(batch(ds, range(16)), wrapper(b, 'SAMOptimWrapper', rho=RHO))
    assert_weights(a, weights(b), atol=0)
