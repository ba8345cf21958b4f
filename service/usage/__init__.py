"""Usage and spend (DESIGN 11): the ledger of what supervised calls used, its prices,
the admin usage/costs queries, money budgets and the tenant's spend limit."""
