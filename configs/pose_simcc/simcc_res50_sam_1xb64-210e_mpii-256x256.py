# SAM with Adam as the base optimizer (paper Table 4, "SAM").
_base_ = ['../_base_/pose_simcc_res50_mpii-256x256.py']

optim_wrapper = dict(
    type='SAMOptimWrapper', rho=0.05, optimizer=dict(type='Adam', lr=5e-4)
)
