# Light Flow alpha = 0.75 (Table 2), seed recipe.
_base_ = './lightflow_w1.0_2xb64-403e_flyingchairs.py'
model = dict(width_mult=0.75)
