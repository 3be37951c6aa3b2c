// RUN: canonicalize dce
// x*1, 1*x, x+(-0.0), x-0, x/1 and --x are x itself; for integers any 0 will do.
func @main(%x: tensor<3xf64>, %n: tensor<2xi32>) {
  %one = constant {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %zero = constant {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %negzero = constant {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %a = mul %x, %one : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = mul %one, %a : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  %c = add %b, %negzero : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %d = sub %c, %zero : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %e = div %d, %one : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %f = neg %e : (tensor<3xf64>) -> tensor<3xf64>
  %g = neg %f : (tensor<3xf64>) -> tensor<3xf64>
  %izero = constant {value = dense<0> : tensor<i32>} : () -> tensor<i32>
  %m = add %izero, %n : (tensor<i32>, tensor<2xi32>) -> tensor<2xi32>
  return %g, %m : (tensor<3xf64>, tensor<2xi32>)
}
// CHECK:      func @main(%arg0: tensor<3xf64>, %arg1: tensor<2xi32>) {
// CHECK-NEXT:   return %arg0, %arg1
