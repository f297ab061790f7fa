"""The gradient methods: autodiff, and the EventProp adjoint of each engine."""
