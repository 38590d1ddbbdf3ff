# Adam baseline (paper Table 4, "Adam"): mmpose's SimCC MPII recipe.
_base_ = ['../_base_/pose_simcc_res50_mpii-256x256.py']

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=5e-4))
