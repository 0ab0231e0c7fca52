"""The API's routers, in the order /docs lists them."""
from api.routes import audiences, products, service, users

ROUTERS = (audiences.router, users.router, products.router, service.router)
