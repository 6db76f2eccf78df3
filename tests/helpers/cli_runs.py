"""The training runs the integration tests share, each through experiments.train's
command line once per session (tests/integration/conftest.py's `cli_run`): tiny nets
on tiny data, named by what they exercise."""

from tests.helpers import readme

TINY = ["--hidden_sizes=32", "--eval_k=10", "--quadrature_points=64", "--steps_per_call=5"]
FOUR_FRAMES = ["--dataset=4frames", "--batch_size=20", "--quadrature_points=64"]
AVB = [*FOUR_FRAMES, "--objective=avb", "--epochs=4", "--hidden_sizes=16",
       "--adversary_hidden_sizes=16", "--avb_samples=4", "--eval_k=100"]
IW = [*FOUR_FRAMES, "--epochs=2", "--hidden_sizes=16", "--eval_k=50"]
GREY = ["--dataset=mnist", "--epochs=1", "--batch_size=20", "--latent_dim=3", *TINY]
RUNS = {  # name: (data, arguments) of the runs that must succeed
    # The README's training command, tiny: shared by the command line's, the README's and
    # experiments.evaluate's tests.
    "shared": ("fake", readme.readme_train_flags()),
    "conv": ("fake", ["--epochs=1", "--batch_size=20", "--network=conv", "--conv_channels=4,8",
                      *TINY]),
    "grey_dynamic": ("grey", [*GREY, "--binarization=dynamic"]),
    "grey_none": ("grey", [*GREY, "--binarization=none"]),
    "continuous_bernoulli": ("grey", [*GREY, "--binarization=none",
                                      "--decoder=continuous_bernoulli"]),
    "mixture_prior": (None, [*IW, "--objective=iwae", "--k=4", "--prior=mixture",
                             "--num_components=3"]),
    "four_frames": (None, [*FOUR_FRAMES, "--epochs=6", "--hidden_sizes=32", "--eval_k=200",
                           "--learning_rate=0.01", "--steps_per_call=25",
                           "--quadrature_points=128"]),
    "iwae_dreg": (None, [*IW, "--objective=iwae", "--k=5", "--estimator=dreg"]),
    "iwae_stl": (None, [*IW, "--objective=iwae", "--k=3", "--estimator=stl"]),
    "prior_is": (None, [*IW, "--set=objective=prior_is", "--set=objective.k=16"]),
    "from_config": (None, ["--config=vae_50d", *FOUR_FRAMES, "--epochs=2", "--hidden_sizes=16",
                           "--eval_k=20", "--set=model.activation=tanh"]),
    "renyi": (None, [*IW, "--objective=renyi", "--k=4", "--alpha=0.25"]),
    "vamp_prior": (None, [*IW, "--objective=iwae", "--k=4", "--prior=vamp",
                          "--num_pseudo_inputs=8"]),
    "two_layers": (None, [*IW, "--objective=iwae", "--k=4", "--estimator=stl", "--latent_dim=1",
                          "--latent_dim_2=1", "--hidden_sizes_2=8"]),
    "iaf": (None, [*IW, "--objective=iwae", "--k=4", "--flow=iaf", "--flow_hidden_sizes=8"]),
    "vamp_prior_elbo": (None, [*IW, "--prior=vamp", "--num_pseudo_inputs=8",
                               "--kl_estimator=mc"]),
    "avb": (None, AVB),
    "avb_ac": (None, [*AVB, "--adaptive_contrast", "--kl_warmup_steps=50", "--grad_clip=10"]),
}
