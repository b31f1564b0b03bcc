"""caspo_lite.eval"""
