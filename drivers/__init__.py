"""Device drivers and their simulated peers (OPC UA, Modbus TCP, F/T over UDP, depth camera)."""
