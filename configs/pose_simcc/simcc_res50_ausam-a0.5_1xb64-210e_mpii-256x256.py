# AUSAM at alpha 0.5 with Adam as the base optimizer (paper Table 4, "AUSAM"):
# each step runs both SAM passes on half of the batch, drawn by ADLP score.
_base_ = ['./simcc_res50_adam_1xb64-210e_mpii-256x256.py']
optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    rho=0.05,
    s_min=0.1,
    s_max=0.5,
    warmup_epochs=30,
    init_epochs=1,
    selector='adlp',
    score_average='mean',
)
