// RUN: canonicalize
// Broadcasting a constant to a big shape is not folded into a big literal: the broadcast
// stays (kernels broadcast for free). A small one folds.
func.func @main() -> (tensor<100x100xf64>, tensor<2x2xf64>) {
  %c = "gj.constant"() {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
  %big = "gj.broadcast_to"(%c) {shape = [100, 100]} : (tensor<f64>) -> tensor<100x100xf64>
  %small = "gj.broadcast_to"(%c) {shape = [2, 2]} : (tensor<f64>) -> tensor<2x2xf64>
  func.return %big, %small : tensor<100x100xf64>, tensor<2x2xf64>
}
// CHECK: [[BIG:%[0-9]+]] = "gj.broadcast_to"(%0) {shape = [100, 100]}
// CHECK: [[SMALL:%[0-9]+]] = "gj.constant"() {value = dense<2.0> : tensor<2x2xf64>}
// CHECK: func.return [[BIG]], [[SMALL]]
