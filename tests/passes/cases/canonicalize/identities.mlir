// RUN: canonicalize dce
// x*1, 1*x, x+(-0.0), x-0, x/1 and --x are x itself; for integers any 0 will do.
func.func @main(%x: tensor<3xf64>, %n: tensor<2xi32>) -> (tensor<3xf64>, tensor<2xi32>) {
  %one = "gj.constant"() {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %zero = "gj.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %negzero = "gj.constant"() {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %a = "gj.mul"(%x, %one) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = "gj.mul"(%one, %a) : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  %c = "gj.add"(%b, %negzero) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %d = "gj.sub"(%c, %zero) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %e = "gj.div"(%d, %one) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %f = "gj.neg"(%e) : (tensor<3xf64>) -> tensor<3xf64>
  %g = "gj.neg"(%f) : (tensor<3xf64>) -> tensor<3xf64>
  %izero = "gj.constant"() {value = dense<0> : tensor<i32>} : () -> tensor<i32>
  %m = "gj.add"(%izero, %n) : (tensor<i32>, tensor<2xi32>) -> tensor<2xi32>
  func.return %g, %m : tensor<3xf64>, tensor<2xi32>
}
// CHECK:      func.func @main(%arg0: tensor<3xf64>, %arg1: tensor<2xi32>) -> (tensor<3xf64>, tensor<2xi32>) {
// CHECK-NEXT:   func.return %arg0, %arg1
