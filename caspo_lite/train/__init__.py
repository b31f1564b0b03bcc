"""caspo_lite.train"""
