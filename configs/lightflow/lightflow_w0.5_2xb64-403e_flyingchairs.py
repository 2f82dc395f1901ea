# Light Flow alpha = 0.5 (Table 2), seed recipe.
_base_ = './lightflow_w1.0_2xb64-403e_flyingchairs.py'
model = dict(width_mult=0.5)
