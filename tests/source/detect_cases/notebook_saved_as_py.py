{
 "nbformat": 4,
 "nbformat_minor": 5,
 "metadata": {
  "kernelspec": {
   "name": "python3"
  }
 },
 "cells": [
  {
   "cell_type": "code",
   "metadata": {},
   "source": "%load_ext autoreload\n%autoreload 2\nfiles = !ls data\nfrom sklearn.ensemble import GradientBoostingClassifier\nimport pandas as pd",
   "outputs": [],
   "execution_count": null
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": "%%bash\npip install xgboost\npython -c 'import torch'\n",
   "outputs": [],
   "execution_count": null
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": "df = pd.read_csv('train.csv')\nif True:\n    %time gb = GradientBoostingClassifier()\n    gb = GradientBoostingClassifier(n_estimators=50)\ngb.fit(df.drop(columns='y'), df.y)",
   "outputs": [],
   "execution_count": null
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": "def broken(:\n    pass",
   "outputs": [],
   "execution_count": null
  }
 ]
}