"""`DiffusionPurifier`: diffuse to t*, then run the reverse process back (DiffPure).

The input in [0, 1] is mapped to [-1, 1], diffused to timestep ``t_star``
with Gaussian noise drawn from the request's seed, and denoised by
``steps`` respaced reverse steps of the trained noise-prediction UNet
(`schedule.reverse_step`; ``eta=1`` ancestral DDPM, ``eta=0`` DDIM). All of
it is TensorFlow ops with stateless random numbers, so one seed gives one
answer in Python and in an exported SavedModel.

Its gradient is the exact gradient through every UNet call of the sampler
(the purifier is declared differentiable): a white-box attack follows it,
averaged over the noise by EOT since the purifier is declared random.
``checkpoint_gradients`` recomputes each step's UNet activations in the
backward pass (`tf.recompute_grad`), so a white-box attack's memory does
not grow with the number of sampler steps. The steps are then unrolled;
without it, and in a graph traced for serving (`contract.serving_graph`),
they are one `tf.while_loop`, with the same outputs.

Example:
    >>> purifier = DiffusionPurifier(unet, t_star=150, steps=10)     # doctest: +SKIP
    >>> purifier(x, seed=3)["images"]                                # doctest: +SKIP

Reference:
    Nie et al., Diffusion Models for Adversarial Purification (ICML 2022,
    arXiv:2205.07460); Ho et al., Denoising Diffusion Probabilistic Models
    (2020, arXiv:2006.11239); Song et al., Denoising Diffusion Implicit
    Models (2021, arXiv:2010.02502).
"""

import keras
import tensorflow as tf

from tfdefense.defense import contract, cost
from tfdefense.defense.contract import PurifierLayer
from tfdefense.families.diffpure import schedule
from tfdefense.defense.serialization import deserialize_parts, serialize_parts


@keras.saving.register_keras_serializable(package="tfdefense")
class DiffusionPurifier(PurifierLayer):
    """Purifies by diffusing to ``t_star`` and reversing in ``steps`` steps.

    Args:
        unet: ``[x_t, t] -> noise`` (the EMA weights of a trained `DiffusionModel`).
        t_star: diffusion timestep in [0, timesteps) (DiffPure's t* = t_star / timesteps).
        steps: reverse steps from t_star to the clean image (1 <= steps <= t_star + 1).
        eta: noise of the reverse steps (1: DDPM, 0: DDIM).
        timesteps: T of the schedule the UNet was trained with.
        eot: samples a white-box attack averages by default.
        checkpoint_gradients: recompute UNet activations in the backward pass.
    """

    differentiable = True
    surrogate_name = "identity"  # the base class's identity surrogate: the weak BPDA reference

    def __init__(self, unet, t_star=150, steps=10, eta=1.0, timesteps=1000, eot=8, checkpoint_gradients=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.unet = unet
        self.timesteps = int(timesteps)
        if not 0 <= int(t_star) < self.timesteps:
            raise ValueError(f"t_star must be in [0, {self.timesteps}); got {t_star}.")
        self.t_star, self.steps, self.eta = int(t_star), int(steps), float(eta)
        self.eot = int(eot)
        self.checkpoint_gradients = bool(checkpoint_gradients)
        self.timestep_path = schedule.respaced(self.t_star, self.steps)
        self._abar = schedule.alpha_bars(self.timesteps)
        self.built = True

    @property
    def random(self):
        return True

    @property
    def eot_samples(self):
        return self.eot

    def flops(self):
        """One UNet call per reverse step (the forward diffusion is elementwise)."""
        return (len(self.timestep_path) - 1) * cost.forward_flops(self.unet)

    def _eps(self, x_t, t):
        return tf.cast(self.unet([x_t, tf.fill([tf.shape(x_t)[0]], t)], training=False), tf.float32)

    def purify(self, x, seed=0):
        """Purified images in [0, 1] for images ``x`` in [0, 1] and an int ``seed``."""
        x0 = tf.cast(x, tf.float32) * 2.0 - 1.0
        seed = tf.cast(seed, tf.int32)
        shape = tf.shape(x0)
        x_t = schedule.diffuse(x0, float(self._abar[self.t_star]),
                               tf.random.stateless_normal(shape, tf.stack([seed, 0])))
        timesteps = tf.constant(self.timestep_path[:-1], tf.int32)
        coefficients = tf.constant(schedule.reverse_coefficients(self.timestep_path, self._abar))
        n = len(self.timestep_path) - 1

        def step(k, x_t, eps_fn=self._eps):
            noise = tf.random.stateless_normal(shape, tf.stack([seed, k + 1]))
            return k + 1, schedule.reverse_step(x_t, eps_fn(x_t, timesteps[k]), coefficients[k], self.eta, noise)

        if self.checkpoint_gradients and not contract.for_serving():
            # Unrolled, each step checkpointed (tf.recompute_grad fails inside a tf.while_loop's gradient).
            eps_fn = tf.recompute_grad(self._eps)
            for k in range(n):
                _, x_t = step(k, x_t, eps_fn)
        else:  # one loop: a served graph holds one UNet call whatever the number of steps
            _, x_t = tf.while_loop(lambda k, _: k < n, step, (tf.constant(0), x_t), maximum_iterations=n)
        return tf.clip_by_value((x_t + 1.0) / 2.0, 0.0, 1.0)

    def call(self, x, seed=0):
        images = self.purify(x, seed)
        return {"images": images, "errors": tf.reduce_mean(tf.square(images - tf.cast(x, tf.float32)), [1, 2, 3])}

    def get_config(self):
        config = super().get_config()
        config.update(serialize_parts(self, ("unet",)))
        config.update({"t_star": self.t_star, "steps": self.steps, "eta": self.eta, "timesteps": self.timesteps,
                       "eot": self.eot, "checkpoint_gradients": self.checkpoint_gradients})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_parts(config, ("unet",)))
